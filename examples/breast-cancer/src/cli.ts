#!/usr/bin/env node
import { parseTabularCli } from '@flint/example-iris/tabular-cli';
import { main } from './index.js';

await main(
  parseTabularCli('Usage: pnpm breast-cancer [--epochs 50] [--hidden 16] [--batch-size 32] [--lr 0.005] [--seed 42] [--models single,multi]'),
);
