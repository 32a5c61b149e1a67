import { helmTemplate, valuesFileOf } from './chart-fixtures.js';

const SCHEMA_ERROR = /values don't meet the specifications of the schema/;

describe('values.schema.json', () => {
  it.each([
    ['cluster.id=0', "at '/cluster/id'"],
    ['cluster.id=256', "at '/cluster/id'"],
    ['cluster.id=-1', "at '/cluster/id'"],
    ['cluster.name=East', "at '/cluster/name'"],
    ['cluster.name=east_1', "at '/cluster/name'"],
    ['cluster.name=-east', "at '/cluster/name'"],
    ['cluster.name=east-', "at '/cluster/name'"],
    [`cluster.name=${'a'.repeat(33)}`, "at '/cluster/name'"],
    ['apiserver.service.nodePort=2379', "at '/apiserver/service/nodePort'"],
  ])('refuses --set %s with a schema error naming the field', (assignment, field) => {
    const result = helmTemplate(['-f', valuesFileOf('east'), '--set', assignment]);
    expect(result.status).not.toBe(0);
    expect(result.stderr).toMatch(SCHEMA_ERROR);
    expect(result.stderr).toContain(field);
    expect(result.stdout).toBe('');
  });

  it('refuses a cluster ID given as a string', () => {
    const result = helmTemplate(['-f', valuesFileOf('east'), '--set-string', 'cluster.id=1']);
    expect(result.status).not.toBe(0);
    expect(result.stderr).toContain("at '/cluster/id'");
  });

  it('refuses to render without a cluster name and ID', () => {
    const result = helmTemplate([]);
    expect(result.status).not.toBe(0);
    expect(result.stderr).toMatch(SCHEMA_ERROR);
    expect(result.stderr).toMatch(/missing properties 'name', 'id'/);
  });

  it.each([
    ['cluster.id=255', 'cluster.name=a'],
    ['cluster.id=1', `cluster.name=${'a'.repeat(31)}b`],
    ['cluster.id=42', 'cluster.name=eu-west-1'],
  ])('accepts the boundaries: %s, %s', (id, name) => {
    const result = helmTemplate(['--set', id, '--set', name]);
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
  });
});
