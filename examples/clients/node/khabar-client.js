// What the khabar example clients share: loading khabar.v1 from proto/, the channel and its call
// policies, credentials, proto3 JSON input, and reading the google.rpc.BadRequest details of an
// error.
'use strict';

const fs = require('node:fs');
const path = require('node:path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');
const protobuf = require('protobufjs');

// Exit codes: the server refused something; the server could not be reached or used.
const REFUSED = 1;
const TROUBLE = 2;

const DEFAULT_PROTO_DIR = path.resolve(__dirname, '../../../proto');
const KHABAR_PROTOS = [
  'khabar/v1/article.proto',
  'khabar/v1/ingest.proto',
  'khabar/v1/article_service.proto',
  'khabar/v1/feed.proto',
];

// UNAVAILABLE means the call did not reach a working server (connection refused or reset, server
// shutting down), so these calls are retried by the channel itself. Ingest is idempotent by its
// natural key (source.id, uri): a retry of a call whose answer was lost answers UNCHANGED. Ack only
// moves a cursor forward, and the rest only read. INVALID_ARGUMENT, FAILED_PRECONDITION, NOT_FOUND
// and RESOURCE_EXHAUSTED would fail the same way again, so they are never retried.
const SERVICE_CONFIG = {
  methodConfig: [
    {
      name: [
        { service: 'khabar.v1.IngestService', method: 'Ingest' },
        { service: 'khabar.v1.ArticleService', method: 'GetArticle' },
        { service: 'khabar.v1.ArticleService', method: 'ListArticles' },
        { service: 'khabar.v1.FeedService', method: 'Ack' },
        { service: 'khabar.v1.FeedService', method: 'GetConsumer' },
        { service: 'khabar.v1.FeedService', method: 'ListConsumers' },
      ],
      retryPolicy: {
        maxAttempts: 5,
        initialBackoff: '0.2s',
        maxBackoff: '5s',
        backoffMultiplier: 2,
        retryableStatusCodes: ['UNAVAILABLE'],
      },
    },
  ],
};

const CHANNEL_OPTIONS = {
  'grpc.service_config': JSON.stringify(SERVICE_CONFIG),
  // A feed can stay quiet for long; pings find a dead connection (a NAT or load balancer that
  // dropped it) within keepalive_time + keepalive_timeout. khabar answers every ping and sets no
  // minimum interval; proxies in between may (Envoy, nginx), so stay at 30 s or more.
  'grpc.keepalive_time_ms': 30_000,
  'grpc.keepalive_timeout_ms': 10_000,
  // Articles can be large; khabar's default limit is 4 MiB (--max-message-bytes).
  'grpc.max_receive_message_length': 64 << 20,
};

// Options shared by the programs, for node:util parseArgs.
const CONNECTION_OPTIONS = {
  server: { type: 'string', default: process.env.KHABAR_SERVER ?? '127.0.0.1:50051' },
  token: { type: 'string', default: process.env.KHABAR_TOKEN },
  'ca-cert': { type: 'string' },
  'proto-dir': { type: 'string', default: DEFAULT_PROTO_DIR },
};

/** Loads khabar.v1 from the .proto files: services for grpc-js, and message types. */
function loadKhabar(protoDir) {
  const definition = protoLoader.loadSync(KHABAR_PROTOS, {
    includeDirs: [protoDir],
    // uint64 as decimal strings (cursors and versions can pass 2^53), enums by name.
    longs: String,
    enums: String,
    defaults: true,
    oneofs: true,
  });
  const root = new protobuf.Root();
  root.resolvePath = (_origin, target) =>
    target.startsWith('google/protobuf/') ? target : path.join(protoDir, target);
  root.loadSync(KHABAR_PROTOS);
  root.resolveAll();
  return { v1: grpc.loadPackageDefinition(definition).khabar.v1, root };
}

/** Target and credentials for the --server, --ca-cert and --token options. */
function connection(values) {
  let target = values.server;
  const tls = target.startsWith('https://') || values['ca-cert'] !== undefined;
  target = target.replace(/^https?:\/\//, '').replace(/\/$/, '');
  const credentials = tls
    ? grpc.credentials.createSsl(values['ca-cert'] ? fs.readFileSync(values['ca-cert']) : null)
    : grpc.credentials.createInsecure();
  return { target, credentials, options: CHANNEL_OPTIONS };
}

/** Call metadata: the bearer token, if any. */
function metadata(values) {
  const md = new grpc.Metadata();
  if (values.token) md.set('authorization', `Bearer ${values.token}`);
  return md;
}

/** Calls a unary method; resolves with the answer or rejects with the grpc-js error. */
function unary(client, method, request, md, deadlineMs) {
  return new Promise((resolve, reject) => {
    const options = deadlineMs === undefined ? {} : { deadline: Date.now() + deadlineMs };
    client[method](request, md, options, (error, answer) => (error ? reject(error) : resolve(answer)));
  });
}

const RFC3339 = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)$/i;

/** A google.protobuf.Timestamp from its proto3 JSON form, e.g. "2016-07-01T09:00:00Z". */
function timestampFromJson(text, where) {
  const match = RFC3339.exec(text);
  const millis = match ? Date.parse(`${match[1]}${match[3]}`) : NaN;
  if (Number.isNaN(millis)) throw new Error(`${where}: not an RFC 3339 time: ${JSON.stringify(text)}`);
  return { seconds: String(millis / 1000), nanos: Number((match[2] ?? '').padEnd(9, '0')) };
}

/**
 * Turns proto3 JSON (camelCase or proto field names, as grpcurl takes it) into the plain object
 * grpc-js sends for `type`. Times are the one JSON form protobufjs cannot read itself; unknown
 * fields are errors rather than silently dropped.
 */
function fromProto3Json(type, json, where = type.name) {
  if (json === null || typeof json !== 'object' || Array.isArray(json)) {
    throw new Error(`${where}: expected an object`);
  }
  const object = {};
  for (const [key, value] of Object.entries(json)) {
    // Field names are camelCase here, as in proto3 JSON; proto field names are accepted too.
    const field = type.fields[key.replace(/_([a-z0-9])/g, (_m, c) => c.toUpperCase())];
    if (!field) throw new Error(`${where}: unknown field ${JSON.stringify(key)}`);
    const convert = (item, at) => {
      const nested = field.resolvedType;
      if (!(nested instanceof protobuf.Type) || item === null) return item;
      if (nested.fullName === '.google.protobuf.Timestamp') return timestampFromJson(item, at);
      return fromProto3Json(nested, item, at);
    };
    const at = `${where}.${field.name}`;
    object[field.name] = field.repeated
      ? (Array.isArray(value) ? value : [value]).map((item, i) => convert(item, `${at}[${i}]`))
      : convert(value, at);
  }
  return object;
}

/** The google.rpc.BadRequest field violations of a failed call, as [field, description]. */
function fieldViolations(error, rpcTypes) {
  const raw = error.metadata?.get('grpc-status-details-bin') ?? [];
  if (raw.length === 0) return [];
  const status = rpcTypes.Status.decode(raw[0]);
  const violations = [];
  for (const detail of status.details) {
    if ((detail.type_url ?? detail.typeUrl) !== 'type.googleapis.com/google.rpc.BadRequest') continue;
    for (const v of rpcTypes.BadRequest.decode(detail.value).fieldViolations) {
      violations.push([v.field, v.description]);
    }
  }
  return violations;
}

/** google.rpc.Status and BadRequest, for fieldViolations. */
function loadRpcTypes() {
  const root = protobuf.loadSync(path.join(__dirname, 'proto/google-rpc.proto'));
  return {
    Status: root.lookupType('google.rpc.Status'),
    BadRequest: root.lookupType('google.rpc.BadRequest'),
  };
}

/** The name of a status code, e.g. INVALID_ARGUMENT for 3. */
function statusName(code) {
  return Object.keys(grpc.status).find((name) => grpc.status[name] === code) ?? String(code);
}

/** Whether an error says the server could not be reached or used, rather than a refusal. */
function isTrouble(error) {
  return [
    grpc.status.UNAVAILABLE,
    grpc.status.DEADLINE_EXCEEDED,
    grpc.status.UNKNOWN,
    grpc.status.INTERNAL,
    grpc.status.UNAUTHENTICATED,
  ].includes(error.code);
}

module.exports = {
  CONNECTION_OPTIONS,
  REFUSED,
  TROUBLE,
  connection,
  fieldViolations,
  fromProto3Json,
  grpc,
  isTrouble,
  loadKhabar,
  loadRpcTypes,
  metadata,
  statusName,
  unary,
};
