/**
 * Unsafe reference: a fresh node:vm context per eval inside the benchmark's own Node process, with
 * Node's Web API objects handed in as they are. No process wall, no hardening, no limits: the
 * floor for "fresh V8 context + Web APIs", not a sandbox.
 */
import vm from "node:vm";
import type { Baseline, Engine } from "../engine.js";

/** The host's own objects, shared by every context (which is exactly why this is unsafe). */
const WEB_APIS = { crypto: globalThis.crypto, TextEncoder, TextDecoder, URL, URLSearchParams, atob, btoa, structuredClone };

export const nodeVm: Baseline = {
  id: "node-vm",
  label: "node:vm (unsafe reference)",
  features: ["webcrypto"],
  pace: "fast",
  note: "in the Node host process: vm.createContext per eval with Node's crypto/TextEncoder/URL objects injected, compiled scripts cached; no isolation from the host at all",
  async start(): Promise<Engine> {
    // Paddock's carrier caches compiled scripts too; compiling is not what this row measures.
    const scripts = new Map<string, vm.Script>();
    return {
      async eval(code) {
        let script = scripts.get(code);
        if (!script) scripts.set(code, (script = new vm.Script(code)));
        return (await script.runInContext(vm.createContext({ ...WEB_APIS }))) as unknown;
      },
      close: async () => scripts.clear(),
    };
  },
};
