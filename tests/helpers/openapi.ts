// Checks answers against openapi.yaml: the status must be documented for the operation, and the
// JSON body must match the schema (from schemas/api/) that the document names for it.

import { readFileSync } from 'node:fs';
import path from 'node:path';
import Ajv2020 from 'ajv/dist/2020';
import addFormats from 'ajv-formats';
import { loadSchemaDir, projectRoot } from '../../gateway/schemas';

// js-yaml (a devDependency) ships no types; this is the one function used.
const yaml = require('js-yaml') as { safeLoad(text: string): unknown };

type Obj = Record<string, any>;

const root = projectRoot();
export const openapiDoc = yaml.safeLoad(readFileSync(path.join(root, 'openapi.yaml'), 'utf8')) as Obj;
const ajv = new Ajv2020({ allErrors: true, strict: false });
addFormats(ajv);
loadSchemaDir(path.join(root, 'schemas', 'api'), ajv);

function deref(node: Obj): Obj {
  const ref = node.$ref as string | undefined;
  if (!ref || !ref.startsWith('#/')) return node;
  return ref.slice(2).split('/').reduce((o: Obj, k) => o[k], openapiDoc);
}

function schemaFor(ref: string) {
  const id = 'https://sluice.invalid/schemas/' + ref.replace(/^\.\/schemas\//, '');
  const v = ajv.getSchema(id);
  if (!v) throw new Error(`openapi.yaml refers to ${ref}, which is not in schemas/`);
  return v;
}

export interface Answer {
  status: number;
  headers: Record<string, unknown>;
  body?: unknown;
  text?: string;
}

/** Throws unless `answer` is a documented response of `method path` with a matching body. */
export function expectDocumented(method: string, template: string, answer: Answer): void {
  const where = `${method.toUpperCase()} ${template} → ${answer.status}`;
  let response: Obj;
  if (answer.status === 405 || (answer.status === 404 && !openapiDoc.paths[template])) {
    response = deref({ $ref: '#/components/responses/error' });
  } else {
    const op = openapiDoc.paths?.[template]?.[method.toLowerCase()] as Obj | undefined;
    if (!op) throw new Error(`${where}: operation not in openapi.yaml`);
    const r = op.responses?.[String(answer.status)] as Obj | undefined;
    if (!r) throw new Error(`${where}: status not documented (documented: ${Object.keys(op.responses ?? {}).join(', ')})`);
    response = deref(r);
  }
  const type = String(answer.headers['content-type'] ?? '').split(';')[0];
  const content = response.content as Obj | undefined;
  if (!content) return;
  const media = content[type] as Obj | undefined;
  if (!media) throw new Error(`${where}: content type ${type} not documented (${Object.keys(content).join(', ')})`);
  const schemaRef = media.schema?.$ref as string | undefined;
  if (!schemaRef) return;
  const validate = schemaFor(schemaRef);
  const body: unknown = answer.text ? JSON.parse(answer.text) : answer.body;
  if (!validate(body)) throw new Error(`${where}: body does not match ${schemaRef}: ${ajv.errorsText(validate.errors)}\n${JSON.stringify(body)}`);
}

/** Every $ref to a schema file in openapi.yaml, for a test that they all resolve. */
export function schemaRefs(): string[] {
  const refs = new Set<string>();
  const walk = (n: unknown) => {
    if (Array.isArray(n)) n.forEach(walk);
    else if (n && typeof n === 'object') {
      for (const [k, v] of Object.entries(n)) {
        if (k === '$ref' && typeof v === 'string' && v.startsWith('./')) refs.add(v);
        else walk(v);
      }
    }
  };
  walk(openapiDoc);
  return [...refs];
}

export function checkRef(ref: string): void {
  schemaFor(ref);
}
