#!/usr/bin/env node
// Sends articles to khabar: one call per file (`one`), or a stream of many (`stream`).
//
//   node ingest.js one ARTICLE.json [...]      # Ingest, one JSON IngestRequest per file
//   node ingest.js stream ARTICLES.ndjson      # IngestStream, one IngestRequest per line
//
// Requests are proto3 JSON, as grpcurl takes them (tests/fixtures/*.ingest.json). Prints one line
// per article with its outcome, and for a rejected article one indented line per field violation.
// Exit code 0 when every article was stored, 1 when any was rejected, 2 when the server could not
// be reached or used.
'use strict';

const fs = require('node:fs');
const readline = require('node:readline');
const { once } = require('node:events');
const { parseArgs } = require('node:util');
const {
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
} = require('./khabar-client');

// A deadline that expired may have done so after the article was stored; sending it again is
// safe because ingest is idempotent by (source.id, uri), so the retry answers UNCHANGED.
const DEADLINE_ATTEMPTS = 3;

const outcomeName = (outcome) => outcome.replace(/^INGEST_OUTCOME_/, '');

function stored(label, response) {
  return `${label}: ${outcomeName(response.outcome)} id=${response.id} version=${response.version} cursor=${response.cursor}`;
}

function printRejection(label, code, message, violations) {
  if (violations.length === 0) {
    console.log(`${label}: REJECTED ${code} ${message}`);
    return;
  }
  console.log(`${label}: REJECTED ${code} (${violations.length} field violations)`);
  for (const [field, description] of violations) console.log(`  ${field}: ${description}`);
}

/** Ingests the request in `file`; whether the article was stored. */
async function ingestOne(ctx, file) {
  const json = JSON.parse(fs.readFileSync(file, 'utf8'));
  const request = fromProto3Json(ctx.requestType, json, file);
  for (let attempt = 1; ; attempt++) {
    try {
      const response = await unary(ctx.client, 'Ingest', request, ctx.md, ctx.deadlineMs);
      console.log(stored(file, response));
      return true;
    } catch (error) {
      if (error.code === grpc.status.DEADLINE_EXCEEDED && attempt < DEADLINE_ATTEMPTS) {
        console.error(`${file}: deadline exceeded, sending again`);
        continue;
      }
      if (error.code === undefined || isTrouble(error)) throw error;
      // INVALID_ARGUMENT carries google.rpc.BadRequest; FAILED_PRECONDITION (a retracted
      // article) and RESOURCE_EXHAUSTED (too large) only a message.
      printRejection(file, statusName(error.code), error.details, fieldViolations(error, ctx.rpcTypes));
      return false;
    }
  }
}

/** Streams the requests of an NDJSON file; counts of each outcome. */
async function ingestStream(ctx, file) {
  const counts = { CREATED: 0, UPDATED: 0, UNCHANGED: 0, COUNTERS_UPDATED: 0, REJECTED: 0 };
  // Line numbers of the requests sent and not answered yet: answers come in request order.
  const unanswered = [];
  const call = ctx.client.IngestStream(ctx.md);
  const finished = new Promise((resolve, reject) => {
    call.on('error', reject);
    call.on('status', (status) => status.code === grpc.status.OK && resolve());
  });
  // The call can fail while lines are still being read; stop sending then.
  let failed = false;
  finished.catch(() => {
    failed = true;
  });
  call.on('data', (response) => {
    const label = `line ${unanswered.shift()}`;
    const outcome = outcomeName(response.outcome);
    counts[outcome] = (counts[outcome] ?? 0) + 1;
    if (outcome === 'REJECTED') {
      const { code, message, violations } = response.error;
      const pairs = violations.map((v) => [v.field, v.description]);
      printRejection(label, statusName(code), message, pairs);
    } else {
      console.log(stored(label, response));
    }
  });

  // Read lazily and respect flow control: a large file is never held in memory.
  const lines = readline.createInterface({ input: fs.createReadStream(file, 'utf8'), crlfDelay: Infinity });
  let number = 0;
  for await (const line of lines) {
    if (failed) break;
    number += 1;
    if (line.trim() === '') continue;
    let request;
    try {
      request = fromProto3Json(ctx.requestType, JSON.parse(line), `line ${number}`);
    } catch (error) {
      console.error(`line ${number}: not an IngestRequest: ${error.message}`);
      counts.REJECTED += 1;
      continue;
    }
    unanswered.push(number);
    if (!call.write(request)) await Promise.race([once(call, 'drain'), finished]);
  }
  call.end();
  await finished;
  return counts;
}

async function main() {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { ...CONNECTION_OPTIONS, deadline: { type: 'string', default: '10' } },
  });
  const [command, ...files] = positionals;
  if (!['one', 'stream'].includes(command) || files.length === 0 || (command === 'stream' && files.length > 1)) {
    console.error('usage: node ingest.js [--server HOST:PORT] [--token T] [--deadline S] one FILE... | stream FILE');
    return TROUBLE;
  }
  const { v1, root } = loadKhabar(values['proto-dir']);
  const { target, credentials, options } = connection(values);
  const ctx = {
    client: new v1.IngestService(target, credentials, options),
    requestType: root.lookupType('khabar.v1.IngestRequest'),
    rpcTypes: loadRpcTypes(),
    md: metadata(values),
    deadlineMs: Number(values.deadline) * 1000,
  };
  try {
    if (command === 'one') {
      let allStored = true;
      for (const file of files) allStored = (await ingestOne(ctx, file)) && allStored;
      return allStored ? 0 : REFUSED;
    }
    const counts = await ingestStream(ctx, files[0]);
    console.log(
      `${counts.CREATED} created, ${counts.UPDATED} updated, ${counts.UNCHANGED} unchanged, ` +
        `${counts.COUNTERS_UPDATED} counters updated, ${counts.REJECTED} rejected`,
    );
    return counts.REJECTED > 0 ? REFUSED : 0;
  } catch (error) {
    // Articles already answered are stored; sending the file again is safe.
    const what = error.code === undefined ? error.message : `${statusName(error.code)}: ${error.details}`;
    console.error(`failed: ${what}`);
    return TROUBLE;
  } finally {
    ctx.client.close();
  }
}

main().then((code) => {
  process.exitCode = code;
});
