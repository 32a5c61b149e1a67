/**
 * Where the TS codecs and the C header (as the addon compiled it) disagree: struct sizes, field
 * offsets and sizes, fields missing on either side, and the named constants. Empty = in sync.
 */
import { codecs, constants } from './codecs.js';

export interface HeaderLayout {
  size: number;
  fields: Record<string, { offset: number; size: number }>;
}

function structDrift(name: string, header: HeaderLayout | undefined, codec: (typeof codecs)[keyof typeof codecs] | undefined): string[] {
  if (!header) return [`${name}: in lib/datapath/codecs.ts but not in bpf/clustermesh.h`];
  if (!codec) return [`${name}: in bpf/clustermesh.h but has no codec in lib/datapath/codecs.ts`];
  const drift: string[] = [];
  if (header.size !== codec.size) drift.push(`${name}: size ${codec.size} in TS, ${header.size} in C`);
  const fields = codec.fields as Record<string, { offset: number; size: number }>;
  for (const field of new Set([...Object.keys(header.fields), ...Object.keys(fields)])) {
    const c = header.fields[field];
    const t = fields[field];
    if (!c || !t) drift.push(`${name}.${field}: only in ${c ? 'C' : 'TS'}`);
    else if (c.offset !== t.offset || c.size !== t.size) drift.push(`${name}.${field}: offset/size ${t.offset}/${t.size} in TS, ${c.offset}/${c.size} in C`);
  }
  return drift;
}

export function layoutDrift(headerLayouts: Record<string, HeaderLayout>, headerConstants: Record<string, number>): string[] {
  const byName = codecs as Record<string, (typeof codecs)[keyof typeof codecs]>;
  const names = new Set([...Object.keys(headerLayouts), ...Object.keys(codecs)]);
  const drift = [...names].flatMap((name) => structDrift(name, headerLayouts[name], byName[name]));
  for (const [name, value] of Object.entries(constants)) {
    if (headerConstants[name] !== value) drift.push(`${name}: ${value} in TS, ${headerConstants[name]} in C`);
  }
  return drift;
}
