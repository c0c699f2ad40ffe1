/**
 * Decoding what a carrier sends as V8 serialization (an eval's result, a tool call's input). The
 * carrier may be hostile: anything unreadable is a violation, anything too big or too deep for the
 * host is a limit, and no decoded value shares memory with the frame.
 */
import { Deserializer } from "node:v8";
import type { Failure } from "../protocol/messages.js";
import { countSerializedValues, countValues, DIRECT_DECODE_BYTES } from "./result-budget.js";

/** Node's typed-array order for V8 host objects, which Deno's node:v8 also writes (10 is Buffer). */
const VIEW_TYPES = [Int8Array, Uint8Array, Uint8ClampedArray, Int16Array, Uint16Array, Int32Array, Uint32Array, Float32Array, Float64Array, DataView, Uint8Array, BigInt64Array, BigUint64Array] as const;

/**
 * V8's deserializer, with typed arrays copied into buffers of their own: a value never holds a
 * view onto the frame (or any other memory of the host).
 */
class CopyingDeserializer extends Deserializer {
  _readHostObject(): unknown {
    const View = VIEW_TYPES[this.readUint32()];
    if (!View) throw new Error("unknown typed array type");
    const byteLength = this.readUint32();
    const unit = "BYTES_PER_ELEMENT" in View ? View.BYTES_PER_ELEMENT : 1;
    if (byteLength % unit !== 0) throw new Error("typed array length is not a whole number of elements");
    const bytes = new Uint8Array(byteLength);
    bytes.set(this.readRawBytes(byteLength));
    return new (View as new (buffer: ArrayBuffer, offset: number, length: number) => ArrayBufferView)(bytes.buffer, 0, View === DataView ? byteLength : byteLength / unit);
  }
}

export type Decoded = { value: unknown } | { failure: Failure } | { violation: string };

/** What is decoded, for messages: "result" and its limit "maxResultBytes", say. */
export interface DecodedKind {
  noun: string;
  limit: string;
}

/**
 * Decodes a body. Large bodies are counted first, off the host's heap (result-budget.ts); a value
 * too deep or too big for the host is an OutputLimitError, anything else unreadable is the carrier
 * lying. Small bodies are decoded at once (no promise: a tool call's input is on its hot path).
 */
export function decodeResult(body: Uint8Array, maxBytes: number, kind: DecodedKind): Decoded | Promise<Decoded> {
  if (body.byteLength > DIRECT_DECODE_BYTES) return decodeLarge(body, maxBytes, kind);
  const decoded = decodeDirect(body, kind);
  // A few bytes can hold a sparse array of length 2³²−1: counted here too, by length.
  if ("value" in decoded && countValues(decoded.value, maxValuesOf(maxBytes)) > maxValuesOf(maxBytes)) return tooMany(kind, maxBytes);
  return decoded;
}

async function decodeLarge(body: Uint8Array, maxBytes: number, kind: DecodedKind): Promise<Decoded> {
  const maxValues = maxValuesOf(maxBytes);
  let count: number;
  try {
    count = await countSerializedValues(body, maxValues);
  } catch (error) {
    const message = (error as Error).message;
    if (/call stack|memory/i.test(message)) return tooLarge(`the ${kind.noun} is too large or too deep for the host to decode (${message})`);
    return { violation: `an undecodable ${kind.noun} (${message})` };
  }
  if (count > maxValues) return tooMany(kind, maxBytes);
  return decodeDirect(body, kind);
}

function decodeDirect(body: Uint8Array, { noun }: DecodedKind): Decoded {
  try {
    const deserializer = new CopyingDeserializer(body);
    deserializer.readHeader();
    return { value: deserializer.readValue() };
  } catch (error) {
    if (error instanceof RangeError) return tooLarge(`the ${noun} is nested too deeply for the host to decode`);
    return { violation: `an undecodable ${noun} (${(error as Error).message})` };
  }
}

function maxValuesOf(maxBytes: number): number {
  return Math.floor(maxBytes / 8);
}

function tooMany({ noun, limit }: DecodedKind, maxBytes: number): Decoded {
  return tooLarge(`the ${noun} holds more than ${maxValuesOf(maxBytes)} values (objects, elements, entries; an array counts its length); the limit is one per 8 bytes of ${limit}`);
}

function tooLarge(message: string): Decoded {
  return { failure: { kind: "output", name: "OutputLimitError", message } };
}
