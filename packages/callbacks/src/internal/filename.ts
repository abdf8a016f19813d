import { MisconfigurationError, type Metrics } from '@flint/core';
import { listKeys } from './util.js';

/** One `{name}` or `{name:spec}` group of a checkpoint filename template. */
interface Group {
  readonly text: string;
  readonly name: string;
  readonly spec: FormatSpec | undefined;
}

interface FormatSpec {
  readonly zero: boolean;
  readonly width: number;
  readonly precision: number | undefined;
  readonly type: 'f' | 'e' | 'd' | '';
}

const GROUP = /\{([^{}:]+)(?::([^{}]*))?\}/g;
const SPEC = /^(0?)(\d*)(?:\.(\d+))?([fed]?)$/;

/** A parsed filename template: '{epoch}-{val_loss:.4f}'. */
export class FilenameTemplate {
  private readonly groups: readonly Group[];

  constructor(
    readonly template: string,
    readonly autoInsertMetricName: boolean,
  ) {
    const outside = template.replace(GROUP, '');
    if (outside.includes('/') || outside.includes('\\')) {
      throw new MisconfigurationError(`ModelCheckpoint option 'filename' must be a file name without folders (received ${JSON.stringify(template)}); put folders in 'dirpath'.`);
    }
    if (template.endsWith('.ckpt')) {
      throw new MisconfigurationError(`ModelCheckpoint option 'filename' is given without the extension: '.ckpt' is added (received ${JSON.stringify(template)}).`);
    }
    const groups: Group[] = [];
    for (const m of template.matchAll(GROUP)) {
      const name = m[1]!.trim();
      const raw = m[2];
      let spec: FormatSpec | undefined;
      if (raw !== undefined) {
        const s = SPEC.exec(raw);
        if (s === null) {
          throw new MisconfigurationError(
            `ModelCheckpoint option 'filename': unsupported format '${raw}' in ${m[0]} (received ${JSON.stringify(template)}); use '.Nf' (fixed), '.Ne' (exponent), 'd' or '0Nd' (whole numbers), e.g. '{epoch:02d}-{val_loss:.4f}'.`,
          );
        }
        spec = { zero: s[1] === '0', width: s[2] === '' ? 0 : Number(s[2]), precision: s[3] === undefined ? undefined : Number(s[3]), type: s[4] as FormatSpec['type'] };
      }
      groups.push({ text: m[0], name, spec });
    }
    this.groups = groups;
  }

  /** The metric names the template uses. */
  get names(): string[] {
    return this.groups.map((g) => g.name);
  }

  /** Whether a file name could have come from this template: `<name>.ckpt` or `<name>-vN.ckpt`. */
  matches(fileName: string): boolean {
    let pattern = '';
    let last = 0;
    for (const m of this.template.matchAll(GROUP)) {
      const group = this.groups.find((g) => g.text === m[0])!;
      const prefix = this.autoInsertMetricName ? `${group.name.replaceAll('/', '_')}=` : '';
      pattern += escapeRegExp(this.template.slice(last, m.index) + prefix) + '.+?';
      last = m.index + m[0].length;
    }
    pattern += escapeRegExp(this.template.slice(last));
    return new RegExp(`^${pattern}(?:-v\\d+)?\\.ckpt$`).test(fileName);
  }

  /** The file name (without '.ckpt') for these values; a metric the template needs but `values` lacks is an error. */
  format(values: Metrics): string {
    let out = '';
    let last = 0;
    for (const m of this.template.matchAll(GROUP)) {
      const group = this.groups.find((g) => g.text === m[0])!;
      const value = values[group.name];
      if (value === undefined) {
        throw new MisconfigurationError(
          `ModelCheckpoint: the filename template ${JSON.stringify(this.template)} needs '${group.name}', which is not among the metrics logged so far: ${listKeys(values)}. Log it before this checkpoint is saved, or remove it from 'filename'.`,
        );
      }
      const text = formatNumber(value, group.spec, group.name);
      out += this.template.slice(last, m.index) + (this.autoInsertMetricName ? `${group.name.replaceAll('/', '_')}=${text}` : text);
      last = m.index + m[0].length;
    }
    return out + this.template.slice(last);
  }
}

/** Python's str.format for the supported specs ('.4f', '.2e', 'd', '03d'). */
export function formatNumber(value: number, spec: FormatSpec | undefined, name: string): string {
  if (Number.isNaN(value)) return 'nan';
  if (!Number.isFinite(value)) return value > 0 ? 'inf' : '-inf';
  let body: string;
  const type = spec?.type ?? '';
  if (type === 'f') body = Math.abs(value).toFixed(spec?.precision ?? 6);
  else if (type === 'e') body = Math.abs(value).toExponential(spec?.precision ?? 6).replace(/e([+-])(\d)$/, 'e$10$2');
  else if (type === 'd') {
    if (!Number.isInteger(value)) {
      throw new MisconfigurationError(`ModelCheckpoint: the filename formats '${name}' as a whole number ('d') but its value is ${value}; use '.4f'.`);
    }
    body = String(Math.abs(value));
  } else if (spec?.precision !== undefined) body = String(Number(Math.abs(value).toPrecision(spec.precision)));
  else body = String(Math.abs(value));
  const sign = value < 0 ? '-' : '';
  const width = spec?.width ?? 0;
  if (spec?.zero === true) return sign + body.padStart(Math.max(0, width - sign.length), '0');
  return (sign + body).padStart(width, ' ');
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
