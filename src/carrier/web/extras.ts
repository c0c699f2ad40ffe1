/**
 * Web APIs that live entirely inside one sandbox realm, with no counterpart in the carrier:
 * MessageChannel and MessagePort (HTML, "Channel messaging"), for messages between two ports of
 * the same realm. Deno's own ports are not lent to realms: they deliver on Deno's event loop,
 * outside the eval's timers, limits and realm pumping. Here a message is cloned when posted and
 * delivered by a task the carrier queues for the eval (`schedule`).
 *
 * `installRealmExtras` is not run by the carrier: the carrier compiles its source text
 * (`installRealmExtras.toString()`) in each new realm and calls it there, once the realm's own Web
 * API globals exist, so that everything it makes belongs to the realm. Hence:
 * - It is self-contained: no module-level names, no imports (types only).
 * - It names what it defines explicitly: the carrier bundle is minified, so names inferred from
 *   identifiers do not survive.
 * - It takes everything it uses from the realm at install, before any user code runs. A persistent
 *   realm's code may later replace globals or prototype methods (Array.prototype.push,
 *   WeakMap.prototype.get, EventTarget.prototype.dispatchEvent…) or add members to
 *   Object.prototype; the APIs here must keep working and never call into what user code put
 *   there. So code that runs after install calls realm functions only through references captured
 *   here (with a captured Reflect.apply), uses no array methods or iteration on its own values,
 *   writes no array element by assignment (an inherited setter could catch it), and hands no
 *   dictionary to a Web API that could inherit members from Object.prototype.
 *   (User-supplied values are another matter: converting them the WebIDL way calls their
 *   iterators, getters and valueOf, as the standards say.)
 */

/** A MessagePort event handler attribute (onmessage, onmessageerror) and its event listener. */
interface EventHandlerSlot {
  readonly type: string;
  /** What the attribute returns: a callback object, or null. */
  value: unknown;
  /** The listener registered while the handler is non-null (HTML's "event handler" activation). */
  listener: ((event: unknown) => void) | null;
}

/** A message posted to a port whose port message queue is not yet enabled. */
interface WaitingMessage {
  readonly data: unknown;
  next: WaitingMessage | null;
}

interface PortState {
  readonly port: object;
  /** The port this one is entangled with; null once either side closed. */
  partner: PortState | null;
  /** Whether the port message queue is enabled (by start(), or by setting onmessage). */
  enabled: boolean;
  /** Set by close(): a closed port receives nothing, not even messages already on their way. */
  closed: boolean;
  /** Messages that wait for the queue to be enabled, oldest first (a list: no array methods). */
  first: WaitingMessage | null;
  last: WaitingMessage | null;
  readonly onmessage: EventHandlerSlot;
  readonly onmessageerror: EventHandlerSlot;
}

/**
 * Defines MessageChannel and MessagePort on `G` (the realm's global, or an object that inherits from it). `schedule`
 * queues a macrotask for the realm; tasks must run in the order they were queued (message order
 * relies on it).
 */
export function installRealmExtras(G: any, schedule: (task: () => void) => void): void {
  "use strict";
  // ---- Captured now, while the realm is still pristine (see the file's comment). ----
  const { apply, construct } = G.Reflect;
  const { defineProperty, setPrototypeOf } = G.Object;
  const TypeError = G.TypeError;
  const WeakMap = G.WeakMap;
  const { get: weakGet, set: weakSet } = WeakMap.prototype;
  const iteratorSymbol = G.Symbol.iterator;
  const toStringTagSymbol = G.Symbol.toStringTag;
  const DOMException = G.DOMException;

  const isObject = (value: unknown): value is object => (typeof value === "object" && value !== null) || typeof value === "function";

  /** Data about realm objects, out of user code's reach; the lookup doubles as the brand check. */
  const privateData = <T>(): { get: (key: unknown) => T | undefined; set: (key: object, value: T) => void } => {
    const map = new WeakMap();
    return {
      get: (key) => apply(weakGet, map, [key]),
      set: (key, value) => {
        apply(weakSet, map, [key, value]);
      },
    };
  };

  /** Appends to an array of ours without Array.prototype.push or an assignment (see above). */
  const append = (list: unknown[], value: unknown): void => {
    defineProperty(list, list.length, { __proto__: null, value, writable: true, enumerable: true, configurable: true });
  };

  /**
   * Shapes `ctor` and `proto` as a WebIDL interface object and interface prototype object, and
   * defines the interface on the global. Runs at install only, so plain descriptors are safe here.
   */
  const defineInterface = (name: string, ctor: object, length: number, proto: object, parent: { prototype: object } | null): void => {
    if (parent !== null) {
      setPrototypeOf(ctor, parent);
      setPrototypeOf(proto, parent.prototype);
    }
    defineProperty(ctor, "length", { value: length, writable: false, enumerable: false, configurable: true });
    defineProperty(ctor, "name", { value: name, writable: false, enumerable: false, configurable: true });
    defineProperty(ctor, "prototype", { value: proto, writable: false, enumerable: false, configurable: false });
    defineProperty(proto, "constructor", { value: ctor, writable: true, enumerable: false, configurable: true });
    defineProperty(proto, toStringTagSymbol, { value: name, writable: false, enumerable: false, configurable: true });
    defineProperty(G, name, { value: ctor, writable: true, enumerable: false, configurable: true });
  };

  // ---- MessageChannel and MessagePort (HTML "Channel messaging") ----
  const EventTarget = G.EventTarget;
  const MessageEvent = G.MessageEvent;
  const structuredClone = G.structuredClone;
  const Event = G.Event;
  if ([EventTarget, Event, MessageEvent, structuredClone, DOMException].some((api) => typeof api !== "function")) return;
  const { addEventListener, removeEventListener, dispatchEvent } = EventTarget.prototype;
  const preventDefault = Event.prototype.preventDefault;
  const ports = privateData<PortState>();
  const channels = privateData<{ readonly port1: object; readonly port2: object }>();
  const failPost = "Failed to execute 'postMessage' on 'MessagePort': ";

  const portOf = (self: unknown): PortState => {
    const state = ports.get(self);
    if (state === undefined) throw new TypeError("Illegal invocation");
    return state;
  };

  const dataCloneError = (message: string): object => new DOMException(`${failPost}${message}`, "DataCloneError");

  // User code cannot make ports: MessageChannel does, through `newPort`, which constructs the
  // realm's EventTarget with this as new.target (so no `super()` lookup either, see above).
  const MessagePort = function (): never {
    throw new TypeError("Illegal constructor");
  };

  const newPort = (): object => {
    const port = construct(EventTarget, [], MessagePort);
    const slot = (type: string): EventHandlerSlot => ({ type, value: null, listener: null });
    ports.set(port, { port, partner: null, enabled: false, closed: false, first: null, last: null, onmessage: slot("message"), onmessageerror: slot("messageerror") });
    return port;
  };

  /** The task that fires one message at its port. */
  const delivery = (target: PortState, data: unknown) => (): void => {
    // A port closed since: what was on its way is lost with it (as in browsers). A port whose
    // partner closed still gets what the partner posted before.
    if (target.closed) return;
    // MessageEventInit's `ports` defaults to the empty list (no port is ever transferred here);
    // no prototype, so members nobody gave are not looked up on Object.prototype.
    const event = new MessageEvent("message", { __proto__: null, data });
    apply(dispatchEvent, target.port, [event]);
  };

  /**
   * Each message is a task of its own, queued when the port's message queue is enabled. The task
   * carries its message: if the carrier drops the task (its eval ended), the message goes with it
   * rather than lingering ahead of later ones.
   */
  const enqueue = (target: PortState, data: unknown): void => {
    if (target.enabled) return schedule(delivery(target, data));
    const message: WaitingMessage = { data, next: null };
    if (target.last === null) target.first = message;
    else target.last.next = message;
    target.last = message;
  };

  const enable = (state: PortState): void => {
    if (state.enabled) return;
    state.enabled = true;
    let message = state.first;
    state.first = state.last = null;
    // (Should `schedule` throw, the eval broke a limit: the messages not yet queued go with it.)
    while (message !== null) {
      schedule(delivery(state, message.data));
      message = message.next;
    }
  };

  /** Closes a port: it drops what waits for it, and both sides are disentangled. */
  const shut = (state: PortState): void => {
    state.closed = true;
    state.first = state.last = null;
    const partner = state.partner;
    if (partner !== null) {
      partner.partner = null;
      state.partner = null;
    }
  };

  /** WebIDL `sequence<object>` from an iterable and its @@iterator method. */
  const objectSequence = (iterable: unknown, method: unknown, what: string): object[] => {
    const iterator = apply(method, iterable, []);
    if (!isObject(iterator)) throw new TypeError(`${failPost}${what} is not iterable.`);
    const next = (iterator as { next?: unknown }).next;
    const list: object[] = [];
    for (;;) {
      const result = apply(next, iterator, []);
      if (!isObject(result)) throw new TypeError(`${failPost}the iterator of ${what} returned a non-object.`);
      if ((result as { done?: unknown }).done) return list;
      const item = (result as { value?: unknown }).value;
      if (!isObject(item)) throw new TypeError(`${failPost}${what}, index ${list.length} is not an object.`);
      append(list, item);
    }
  };

  /**
   * postMessage's second argument, by WebIDL overload resolution: an iterable is the transfer list
   * (postMessage(message, transfer)), anything else the options dictionary (postMessage(message,
   * { transfer })).
   */
  const transferListOf = (value: unknown): object[] => {
    if (value === undefined || value === null) return [];
    if (!isObject(value)) throw new TypeError(`${failPost}Argument 2 can not be converted to a dictionary.`);
    const method = (value as Record<symbol, unknown>)[iteratorSymbol];
    if (method !== undefined && method !== null) {
      if (typeof method !== "function") throw new TypeError(`${failPost}Argument 2 is not iterable.`);
      return objectSequence(value, method, "Argument 2");
    }
    const transfer = (value as { transfer?: unknown }).transfer;
    if (transfer === undefined) return [];
    const what = "'transfer' of 'StructuredSerializeOptions'";
    const transferMethod = isObject(transfer) ? (transfer as Record<symbol, unknown>)[iteratorSymbol] : undefined;
    if (typeof transferMethod !== "function") throw new TypeError(`${failPost}${what} can not be converted to a sequence.`);
    return objectSequence(transfer, transferMethod, what);
  };

  /** HTML's "message port post message steps", within one realm. */
  const post = (source: PortState, message: unknown, transfer: object[]): void => {
    const target = source.partner;
    // Ports cannot be transferred here: a transferred port must also be found and replaced
    // wherever the message refers to it, which structuredClone cannot do for a port of ours (it
    // would copy it as a plain object). So a port in the transfer list is refused with a
    // DataCloneError, except for the two cases the standard settles without a transfer: the
    // source port itself (always a DataCloneError) and the target port ("doomed": the message
    // is dropped and the channel lost, without an error).
    let doomed = false;
    let toClone = transfer;
    for (let i = 0; i < transfer.length; i++) {
      const state = ports.get(transfer[i]);
      if (state === undefined) continue;
      if (state === source) throw dataCloneError("the source port cannot be transferred through itself.");
      if (state === target && !doomed) {
        doomed = true;
        continue;
      }
      throw dataCloneError(state === target ? "the target port is listed twice." : "transferring a MessagePort is not supported in this sandbox.");
    }
    if (doomed) {
      // The other transferables (buffers) are still transferred: the message is serialized.
      toClone = [];
      for (let i = 0; i < transfer.length; i++) if (transfer[i] !== target?.port) append(toClone, transfer[i]);
    }
    // Serializing happens even when the message goes nowhere: a message that cannot be cloned
    // throws (a DataCloneError, synchronously, to the caller), and buffers are detached.
    const data = toClone.length === 0 ? structuredClone(message) : structuredClone(message, { __proto__: null, transfer: toClone });
    if (target === null) return;
    if (doomed) return shut(target);
    enqueue(target, data);
  };

  /** HTML's event handler IDL attribute setter ([LegacyTreatNonObjectAsNull] EventHandler). */
  const setHandler = (state: PortState, slot: EventHandlerSlot, value: unknown): void => {
    const callback = isObject(value) ? value : null;
    slot.value = callback;
    if (callback === null) {
      if (slot.listener === null) return;
      const listener = slot.listener;
      slot.listener = null;
      apply(removeEventListener, state.port, [slot.type, listener]);
    } else if (slot.listener === null) {
      // Registered when the handler becomes non-null, so it runs in that order among the port's
      // listeners; it calls whatever the attribute holds when the event fires.
      const listener = (event: unknown): void => {
        const handler = slot.value;
        // A non-callable object is kept by the attribute but does nothing (WebIDL, "invoke a
        // callback function" with [LegacyTreatNonObjectAsNull]).
        if (typeof handler !== "function") return;
        const result = apply(handler, state.port, [event]);
        if (result === false) apply(preventDefault, event, []);
      };
      slot.listener = listener;
      apply(addEventListener, state.port, [slot.type, listener]);
    }
  };

  defineInterface(
    "MessagePort",
    MessagePort,
    0,
    {
      postMessage(this: unknown, message: unknown, transferOrOptions: unknown = undefined): void {
        const source = portOf(this);
        if (arguments.length < 1) throw new TypeError(`${failPost}1 argument required, but only 0 present.`);
        post(source, message, transferListOf(transferOrOptions));
      },
      start(this: unknown): void {
        enable(portOf(this));
      },
      close(this: unknown): void {
        shut(portOf(this));
      },
      get onmessage(): unknown {
        return portOf(this).onmessage.value;
      },
      set onmessage(value: unknown) {
        const state = portOf(this);
        setHandler(state, state.onmessage, value);
        // "The first time onmessage is set, the port message queue must be enabled, as if start()".
        enable(state);
      },
      // Never fired: messages are cloned when posted, so none can fail to deserialize on arrival.
      get onmessageerror(): unknown {
        return portOf(this).onmessageerror.value;
      },
      set onmessageerror(value: unknown) {
        const state = portOf(this);
        setHandler(state, state.onmessageerror, value);
      },
    },
    EventTarget,
  );

  const MessageChannel = function (this: object): void {
    if (new.target === undefined) {
      throw new TypeError("Failed to construct 'MessageChannel': Please use the 'new' operator, this object constructor cannot be called as a function.");
    }
    const port1 = newPort();
    const port2 = newPort();
    const state1 = portOf(port1);
    const state2 = portOf(port2);
    state1.partner = state2;
    state2.partner = state1;
    channels.set(this, { port1, port2 });
  };
  const channelOf = (self: unknown): { readonly port1: object; readonly port2: object } => {
    const found = channels.get(self);
    if (found === undefined) throw new TypeError("Illegal invocation");
    return found;
  };
  defineInterface(
    "MessageChannel",
    MessageChannel,
    0,
    {
      get port1(): object {
        return channelOf(this).port1;
      },
      get port2(): object {
        return channelOf(this).port2;
      },
    },
    null,
  );
}
