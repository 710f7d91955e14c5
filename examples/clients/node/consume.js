#!/usr/bin/env node
// Follows khabar's feed as a durable consumer: resumes after what it acknowledged last time.
//
//   node consume.js --consumer search-indexer --from-beginning --until-caught-up
//   node consume.js --consumer search-indexer --limit 100
//
// Prints one line per event. Acknowledges its progress every --ack-every events, whenever the feed
// pauses (a checkpoint) and before it stops, so the next run starts right after the last event it
// printed. When the server goes away (UNAVAILABLE, e.g. a restart), it subscribes again and resumes
// from the consumer's cursor on the server. Exit code 0 when done, 1 when the server refused, 2 when
// it could not be reached.
'use strict';

const { setTimeout: sleep } = require('node:timers/promises');
const { parseArgs } = require('node:util');
const {
  CONNECTION_OPTIONS,
  REFUSED,
  TROUBLE,
  connection,
  grpc,
  isTrouble,
  loadKhabar,
  metadata,
  statusName,
  unary,
} = require('./khabar-client');

// Unary calls get a deadline; the feed itself does not, since it is meant to stay open.
const CALL_DEADLINE_MS = 10_000;

/** One durable consumer's progress: what was processed, and what the server has recorded. */
class Follower {
  constructor(client, values) {
    this.client = client;
    this.values = values;
    this.md = metadata(values);
    this.processed = 0n;
    this.acked = 0n;
    this.events = 0;
  }

  async ack(cursor) {
    const request = { consumer: this.values.consumer, cursor: cursor.toString() };
    const consumer = await unary(this.client, 'Ack', request, this.md, CALL_DEADLINE_MS);
    this.acked = BigInt(consumer.ackedCursor);
    return consumer;
  }

  async ackProcessed() {
    if (this.processed > this.acked) await this.ack(this.processed);
  }

  /** Subscribes and handles events until the limit or, if asked, until caught up. */
  async follow() {
    const { values } = this;
    const request = {
      consumer: values.consumer,
      filter: { sourceIds: values.source, languages: values.language },
      // Only decides where a new consumer starts; an existing one resumes after its cursor.
      ...(values['from-beginning'] ? { fromBeginning: true } : { fromNow: true }),
    };
    const feed = this.client.Subscribe(request, this.md);
    try {
      for await (const event of feed) {
        if (event.kind === 'EVENT_KIND_CHECKPOINT') {
          // Everything up to the checkpoint was examined and what matched was printed:
          // acknowledging it lets a filtered consumer move on too.
          const cursor = BigInt(event.cursor);
          const consumer = await this.ack(cursor > this.processed ? cursor : this.processed);
          if (values['until-caught-up'] && BigInt(consumer.ackedCursor) >= BigInt(consumer.headCursor)) {
            console.log(`caught up at cursor ${consumer.ackedCursor}`);
            return;
          }
          continue;
        }
        printEvent(event);
        this.processed = BigInt(event.cursor);
        this.events += 1;
        if (this.events % values.ackEvery === 0) await this.ackProcessed();
        if (values.limit > 0 && this.events >= values.limit) return;
      }
    } finally {
      // Ending early cancels the call; its CANCELLED error is expected and ignored.
      feed.on('error', () => {});
      feed.cancel();
    }
  }
}

function printEvent(event) {
  const article = event.article ?? { source: {} };
  const kind = event.kind.replace(/^EVENT_KIND_/, '');
  console.log(
    `event cursor=${event.cursor} kind=${kind} id=${article.id} version=${article.version} ` +
      `source=${article.source?.id} headline=${article.headline}`,
  );
}

async function announce(client, values) {
  try {
    const request = { name: values.consumer };
    const consumer = await unary(client, 'GetConsumer', request, metadata(values), CALL_DEADLINE_MS);
    console.log(`resuming consumer ${consumer.name} after cursor ${consumer.ackedCursor} (head ${consumer.headCursor})`);
  } catch (error) {
    if (error.code !== grpc.status.NOT_FOUND) throw error;
    console.log(`new consumer ${values.consumer}`);
  }
}

/** Follows the feed, subscribing again (with a growing pause) when the server goes away. */
async function run(follower, values) {
  let failures = 0;
  for (;;) {
    const eventsBefore = follower.events;
    try {
      // Before (re)subscribing, record what was processed: the server resumes right after.
      await follower.ackProcessed();
      await follower.follow();
      await follower.ackProcessed();
      return;
    } catch (error) {
      if (follower.events > eventsBefore) failures = 0;
      if (error.code !== grpc.status.UNAVAILABLE || failures >= values.reconnects) throw error;
      failures += 1;
      const pause = Math.min(500 * 2 ** (failures - 1), 5000);
      console.error(`feed interrupted (${statusName(error.code)}: ${error.details}); subscribing again in ${(pause / 1000).toFixed(1)} s`);
      await sleep(pause);
    }
  }
}

function count(text, name, min) {
  const value = Number(text);
  if (!Number.isInteger(value) || value < min) throw new Error(`--${name} must be an integer of at least ${min}`);
  return value;
}

async function main() {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        ...CONNECTION_OPTIONS,
        consumer: { type: 'string' },
        'from-beginning': { type: 'boolean', default: false },
        source: { type: 'string', multiple: true, default: [] },
        language: { type: 'string', multiple: true, default: [] },
        limit: { type: 'string', default: '0' },
        'until-caught-up': { type: 'boolean', default: false },
        'ack-every': { type: 'string', default: '32' },
        reconnects: { type: 'string', default: '8' },
      },
    }));
    if (!values.consumer) throw new Error('--consumer NAME is required');
    values.limit = count(values.limit, 'limit', 0);
    values.ackEvery = count(values['ack-every'], 'ack-every', 1);
    values.reconnects = count(values.reconnects, 'reconnects', 0);
  } catch (error) {
    console.error(`usage: node consume.js --consumer NAME [--from-beginning] [--until-caught-up] [--limit N] ...: ${error.message}`);
    return TROUBLE;
  }
  const { v1 } = loadKhabar(values['proto-dir']);
  const { target, credentials, options } = connection(values);
  const client = new v1.FeedService(target, credentials, options);
  const follower = new Follower(client, values);
  try {
    await announce(client, values);
    await run(follower, values);
    console.log(`acked cursor ${follower.acked}`);
    return 0;
  } catch (error) {
    if (error.code === undefined) {
      console.error(`failed: ${error.message}`);
      return TROUBLE;
    }
    console.error(`failed: ${statusName(error.code)}: ${error.details}`);
    return isTrouble(error) ? TROUBLE : REFUSED;
  } finally {
    client.close();
  }
}

main().then((code) => {
  process.exitCode = code;
});
