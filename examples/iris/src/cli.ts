#!/usr/bin/env node
import { main } from './index.js';
import { parseTabularCli } from './tabular-cli.js';

await main(
  parseTabularCli('Usage: pnpm iris [--epochs 100] [--hidden 16] [--batch-size 16] [--lr 0.02] [--seed 42] [--models single,multi]'),
);
