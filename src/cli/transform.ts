/**
 * `paddock transform <file>`: NDJSON in on stdin, the function's results out on stdout, streaming.
 * Lines go to the carriers as they are and results come back as JSON texts: the host never parses
 * a record (a line that is not JSON fails in the carrier, as its message's TypeError).
 */
import { readFileSync, createWriteStream, type WriteStream } from "node:fs";
import { basename } from "node:path";
import { once } from "node:events";
import type { Writable } from "node:stream";
import { Transform, type TransformJsonResult, type TransformOptions } from "../transforms/transform.js";

export interface TransformCommandOptions extends Omit<TransformOptions, "code" | "filename" | "onLog"> {
  /** Where dead letters go, one JSON line each; without it, one line each on stderr. */
  errors: string | undefined;
}

export async function transformCommand(file: string, options: TransformCommandOptions): Promise<number> {
  const { errors: errorsPath, ...transformOptions } = options;
  const transform = await Transform.create({
    ...transformOptions,
    code: readFileSync(file, "utf8"),
    filename: basename(file),
    onLog: (entry) => process.stderr.write(`[message ${entry.index}] ${entry.message}\n`),
  });
  const deadLetters: WriteStream | undefined = errorsPath ? createWriteStream(errorsPath) : undefined;
  const batchSize = options.batchSize ?? 1_000;
  const maxInFlight = options.maxInFlight ?? 2 * (options.carriers ?? 1);
  const held: Array<{ base: number; results: Promise<TransformJsonResult[]> }> = [];
  let batch: string[] = [];
  /** Messages sent so far: each batch's results count from 0, a dead letter's index from the first line. */
  let sent = 0;
  let failed = 0;
  const writeOut = async ({ base, results: pending }: (typeof held)[number]) => {
    const results = await pending;
    const lines: string[] = [];
    const letters: string[] = [];
    for (const result of results) {
      if (result.ok) {
        // undefined and null results are filtered out.
        if (result.json !== undefined && result.json !== "null") lines.push(result.json);
        continue;
      }
      failed++;
      letters.push(JSON.stringify({ index: base + result.index, input: inputOf(result.input), error: result.error, version: result.version }));
    }
    if (letters.length > 0) await write(deadLetters ?? process.stderr, letters.join("\n") + "\n");
    if (lines.length > 0) await write(process.stdout, lines.join("\n") + "\n");
  };
  const send = async () => {
    const results = transform.callManyJson(batch);
    results.catch(() => {});
    held.push({ base: sent, results });
    sent += batch.length;
    batch = [];
    // Backpressure: no more than maxInFlight batches are read ahead of what was written.
    while (held.length >= maxInFlight) await writeOut(held.shift()!);
  };
  try {
    let rest = "";
    process.stdin.setEncoding("utf8");
    for await (const chunk of process.stdin as AsyncIterable<string>) {
      const lines = (rest + chunk).split("\n");
      rest = lines.pop()!;
      for (const line of lines) {
        const item = line.endsWith("\r") ? line.slice(0, -1) : line;
        // Blank lines are skipped (the trim only for lines that start blank: it copies).
        if (item.length === 0 || (item.charCodeAt(0) <= 32 && item.trim() === "")) continue;
        batch.push(item);
        if (batch.length >= batchSize) await send();
      }
    }
    if (rest.trim() !== "") batch.push(rest);
    if (batch.length > 0) await send();
    while (held.length > 0) await writeOut(held.shift()!);
  } finally {
    await transform.close();
    if (deadLetters) {
      deadLetters.end();
      await once(deadLetters, "close");
    }
  }
  if (failed > 0) {
    const stats = transform.stats();
    process.stderr.write(`paddock transform: ${stats.messagesIn} messages, ${stats.messagesOut} out, ${stats.dropped} dropped, ${failed} failed (${Object.entries(stats.failed).map(([name, count]) => `${name} ${count}`).join(", ")})\n`);
  }
  return 0;
}

/** A dead letter's input: the message as JSON where it was JSON, else its text. */
function inputOf(text: string | undefined): unknown {
  if (text === undefined) return null;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

async function write(stream: Writable, text: string): Promise<void> {
  if (!stream.write(text)) await once(stream, "drain");
}
