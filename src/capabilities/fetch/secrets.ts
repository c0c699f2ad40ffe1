/**
 * Secrets stay on the host. The sandbox sees `env.NAME` holding a placeholder; the host puts the
 * real value into outgoing request headers only, and only for requests to that secret's hosts
 * (https, unless a host pattern says http://). A response that reflects the value back has it
 * replaced by the placeholder again, and no audit record or error text ever holds it.
 */
import { randomBytes } from "node:crypto";
import { HostPatterns } from "./hosts.js";
import type { ResolvedNetOptions } from "./options.js";

interface Secret {
  name: string;
  value: string;
  lowerValue: string;
  placeholder: string;
  hosts: HostPatterns;
  valueBytes: Buffer;
  placeholderBytes: Buffer;
}

export type HeaderList = Array<[string, string]>;

export class Secrets {
  private readonly secrets: Secret[];

  constructor(options: ResolvedNetOptions["secrets"]) {
    // One nonce per sandbox: placeholders cannot be guessed across sandboxes, or collide with text.
    const nonce = randomBytes(12).toString("hex");
    this.secrets = Object.entries(options).map(([name, { value, hosts }]) => {
      const placeholder = `paddock-secret:${name}:${nonce}`;
      return {
        name,
        value,
        lowerValue: value.toLowerCase(),
        placeholder,
        hosts: new HostPatterns(hosts, `net.secrets.${name}.hosts`),
        valueBytes: Buffer.from(value),
        placeholderBytes: Buffer.from(placeholder),
      };
    });
    // Longest first: a secret that contains another must be replaced whole.
    this.secrets.sort((a, b) => b.value.length - a.value.length);
  }

  get isEmpty(): boolean {
    return this.secrets.length === 0;
  }

  /** What the sandbox sees as `env`: each secret's name with its placeholder. */
  placeholders(): Record<string, string> {
    return Object.fromEntries(this.secrets.map((secret) => [secret.name, secret.placeholder]));
  }

  /**
   * The request headers for one hop to `url`. A placeholder becomes the real value where this
   * secret may go. On a redirect hop, a header that carries a secret this host may not have is
   * dropped entirely (the first hop keeps the placeholder the code wrote: it is worthless).
   */
  headersFor(headers: HeaderList, url: URL, redirected: boolean): HeaderList {
    if (this.secrets.length === 0) return headers;
    const result: HeaderList = [];
    let substituted = false;
    for (const [name, original] of headers) {
      let value = original;
      let withheld = false;
      for (const secret of this.secrets) {
        if (!value.includes(secret.placeholder)) continue;
        if (this.mayReceive(secret, url)) {
          value = value.replaceAll(secret.placeholder, secret.value);
          substituted = true;
        } else {
          withheld = true;
        }
      }
      if (withheld && redirected) continue;
      result.push([name, value]);
    }
    // A range of an echoed secret would come back as a fragment that scrubbing cannot recognize.
    return substituted ? result.filter(([name]) => name !== "range" && name !== "if-range") : result;
  }

  /**
   * Text with every secret value replaced by its placeholder, whatever its case (a URL parser
   * lower-cases host names): for anything the sandbox, the records or the logs see.
   */
  redactText(text: string): string {
    for (const secret of this.secrets) {
      let lower = text.toLowerCase();
      if (lower.length !== text.length) {
        text = text.replaceAll(secret.value, secret.placeholder);
        continue;
      }
      for (let at = lower.indexOf(secret.lowerValue); at !== -1; at = lower.indexOf(secret.lowerValue, at + secret.placeholder.length)) {
        text = text.slice(0, at) + secret.placeholder + text.slice(at + secret.value.length);
        lower = text.toLowerCase();
      }
    }
    return text;
  }

  /** True when the URL carries a secret value, in any case, percent-encoded or not. */
  foundIn(url: URL): boolean {
    return this.revealedIn(url.href);
  }

  /** A URL for records and messages: without its fragment, and never one that carries a secret. */
  redactUrl(url: URL): string {
    const href = stripFragment(url);
    if (!this.foundIn(url)) return href;
    const redacted = this.redactText(href);
    return this.revealedIn(redacted) ? "(a URL that carries a secret)" : redacted;
  }

  /** True when the text holds a secret value in any case, percent-encoded (even twice) or not. */
  revealedIn(text: string): boolean {
    if (this.secrets.length === 0) return false;
    const once = percentDecoded(text);
    const forms = [text, once, percentDecoded(once)].map((form) => form.toLowerCase());
    return this.secrets.some((secret) => forms.some((form) => form.includes(secret.lowerValue)));
  }

  /**
   * A response body filter that replaces secret values with placeholders. A chunk ending in what
   * may be the start of a secret holds those bytes back until the next chunk (or the end) decides.
   */
  bodyScrubber(): { push(chunk: Buffer): Buffer; flush(): Buffer } {
    let held = Buffer.alloc(0);
    const scrub = (data: Buffer): Buffer => {
      for (const secret of this.secrets) {
        let at = data.indexOf(secret.valueBytes);
        if (at === -1) continue;
        const parts: Buffer[] = [];
        let from = 0;
        while (at !== -1) {
          parts.push(data.subarray(from, at), secret.placeholderBytes);
          from = at + secret.valueBytes.byteLength;
          at = data.indexOf(secret.valueBytes, from);
        }
        parts.push(data.subarray(from));
        data = Buffer.concat(parts);
      }
      return data;
    };
    return {
      push: (chunk) => {
        const data = scrub(held.byteLength > 0 ? Buffer.concat([held, chunk]) : chunk);
        const keep = this.partialTail(data);
        held = Buffer.from(data.subarray(data.byteLength - keep));
        return data.subarray(0, data.byteLength - keep);
      },
      // What is still held at the end is the start of a secret: it is not given out either.
      flush: () => {
        const rest = held;
        held = Buffer.alloc(0);
        return rest.byteLength === 0 ? rest : Buffer.from("paddock-secret:withheld");
      },
    };
  }

  /** A whole body with every secret value replaced by its placeholder (exact bytes). */
  redactBytes(data: Buffer): Buffer {
    const scrubber = this.bodyScrubber();
    const head = scrubber.push(data);
    const tail = scrubber.flush();
    return tail.byteLength === 0 ? head : Buffer.concat([head, tail]);
  }

  private mayReceive(secret: Secret, url: URL): boolean {
    const pattern = secret.hosts.match(url);
    if (pattern === undefined) return false;
    return url.protocol === "https:" || pattern.toLowerCase().startsWith("http://");
  }

  /** The length of the longest end of `data` that is the beginning of some secret value. */
  private partialTail(data: Buffer): number {
    let longest = 0;
    for (const { valueBytes } of this.secrets) {
      const first = valueBytes[0]!;
      let at = data.indexOf(first, Math.max(0, data.byteLength - valueBytes.byteLength + 1));
      while (at !== -1 && data.byteLength - at > longest) {
        const tail = data.subarray(at);
        if (tail.equals(valueBytes.subarray(0, tail.byteLength))) {
          longest = tail.byteLength;
          break;
        }
        at = data.indexOf(first, at + 1);
      }
    }
    return longest;
  }
}

/** %XX sequences decoded one byte each (as Latin-1), whatever else the text holds: never throws. */
function percentDecoded(text: string): string {
  return text.replace(/%([0-9a-fA-F]{2})/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)));
}

/** A URL as requests carry it: the fragment never leaves the sandbox. */
export function stripFragment(url: URL): string {
  return url.hash === "" ? url.href : url.href.slice(0, -url.hash.length);
}
