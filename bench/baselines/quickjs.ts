/** Baseline: QuickJS compiled to WebAssembly, in this process; a fresh runtime + context per eval. */
import type { Baseline, Engine } from "../engine.js";

export const quickjs: Baseline = {
  id: "quickjs",
  label: "quickjs-emscripten",
  // QuickJS has ECMAScript only: no crypto.subtle, so the SHA-256 row is n/a.
  features: [],
  pace: "fast",
  note: "quickjs-emscripten 0.32 (release-sync wasm) in the Node process; a new QuickJSRuntime + context per eval, disposed after; the value is dumped to a host value",
  async start(): Promise<Engine> {
    // A development dependency: an installed paddock runs its benchmark without this column.
    const { getQuickJS } = await import("quickjs-emscripten");
    const module = await getQuickJS();
    return {
      async eval(code) {
        const runtime = module.newRuntime();
        const context = runtime.newContext();
        try {
          const handle = context.unwrapResult(context.evalCode(code));
          try {
            return context.dump(handle) as unknown;
          } finally {
            handle.dispose();
          }
        } finally {
          context.dispose();
          runtime.dispose();
        }
      },
      close: async () => {},
    };
  },
};
