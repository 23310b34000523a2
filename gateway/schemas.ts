// JSON Schemas, compiled once at start-up: the API's request bodies (schemas/api/, the same files
// openapi.yaml refers to) and the optional per-topic message schemas (--topic-schemas DIR, one
// <topic>.json per topic). A topic without a schema takes any bytes.

import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import Ajv, { ErrorObject, ValidateFunction } from 'ajv';
import Ajv2020 from 'ajv/dist/2020';
import addFormats from 'ajv-formats';
import { isValidName } from '../wire/names';

/** The folder holding package.json and schemas/ (the same from sources and from dist/). */
export function projectRoot(from = __dirname): string {
  let dir = from;
  for (;;) {
    if (existsSync(path.join(dir, 'schemas', 'api')) && existsSync(path.join(dir, 'package.json'))) return dir;
    const up = path.dirname(dir);
    if (up === dir) throw new Error('cannot find the schemas/ folder');
    dir = up;
  }
}

export interface SchemaError {
  instancePath: string;
  keyword: string;
  message: string;
  params: Record<string, unknown>;
}

export function describeErrors(errors: ErrorObject[] | null | undefined): SchemaError[] {
  return (errors ?? []).slice(0, 20).map((e) => ({ instancePath: e.instancePath, keyword: e.keyword, message: e.message ?? '', params: e.params as Record<string, unknown> }));
}

function newAjv(draft: '2020' | '07'): Ajv {
  const ajv = draft === '2020' ? new Ajv2020({ allErrors: true, strict: false }) : new Ajv({ allErrors: true, strict: false });
  addFormats(ajv);
  return ajv;
}

/** Loads every *.json in `dir` into one Ajv (2020-12), so $refs between them resolve; returns it. */
export function loadSchemaDir(dir: string, ajv: Ajv = newAjv('2020')): Ajv {
  for (const f of readdirSync(dir).filter((n) => n.endsWith('.json')).sort()) {
    ajv.addSchema(JSON.parse(readFileSync(path.join(dir, f), 'utf8')) as object);
  }
  return ajv;
}

const ID = 'https://sluice.invalid/schemas/';

export class Schemas {
  readonly batchRequest: ValidateFunction;
  readonly batchItem: ValidateFunction;
  readonly authFile: ValidateFunction;
  readonly webhookConfig: ValidateFunction;
  private readonly topics = new Map<string, ValidateFunction>();

  constructor(root = projectRoot(), topicSchemaDir = '') {
    const ajv = loadSchemaDir(path.join(root, 'schemas', 'api'));
    loadSchemaDir(path.join(root, 'schemas', 'config'), ajv);
    const get = (id: string) => {
      const v = ajv.getSchema(ID + id);
      if (!v) throw new Error(`schema ${id} missing`);
      return v;
    };
    this.batchRequest = get('api/batch-request.json');
    this.batchItem = get('api/batch-item.json');
    this.authFile = get('config/auth-file.json');
    this.webhookConfig = get('config/webhooks.json');
    if (topicSchemaDir) this.loadTopicSchemas(topicSchemaDir);
  }

  private loadTopicSchemas(dir: string): void {
    for (const f of readdirSync(dir).filter((n) => n.endsWith('.json')).sort()) {
      const topic = f.slice(0, -5);
      if (!isValidName(topic)) throw new Error(`topic schema ${f}: not a valid topic name`);
      const schema = JSON.parse(readFileSync(path.join(dir, f), 'utf8')) as { $schema?: string };
      const draft = typeof schema.$schema === 'string' && schema.$schema.includes('draft-07') ? '07' : '2020';
      try {
        this.topics.set(topic, newAjv(draft).compile(schema));
      } catch (err) {
        throw new Error(`topic schema ${f}: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
  }

  /** The compiled message schema of a topic, if it has one. */
  topic(name: string): ValidateFunction | undefined {
    return this.topics.get(name);
  }

  get topicCount(): number {
    return this.topics.size;
  }
}
