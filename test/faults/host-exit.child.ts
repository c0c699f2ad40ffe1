/**
 * Run by host-exit.test.ts: a host with a busy carrier (an eval in an endless loop), a second
 * sandbox's idle carrier and the warm pool's carriers. It prints their pids, then ends as
 * PADDOCK_HOST_EXIT says: "exit" (process.exit), "throw" (an uncaught exception), or "wait" (for the
 * parent's SIGTERM or SIGKILL). Run any other way (node --test runs every file), it does nothing.
 */
import { Sandbox } from "../../src/index.js";
import { childPids } from "../processes.js";

const mode = process.env.PADDOCK_HOST_EXIT;
if (mode) {
  await Sandbox.warm();
  const busy = await Sandbox.create({ timeoutMs: 600_000 });
  const idle = await Sandbox.create();
  await idle.eval("1 + 1");
  void busy.run("for (;;) {}");
  await new Promise((resolve) => setTimeout(resolve, 300));
  process.stdout.write(`${JSON.stringify({ carriers: childPids() })}\n`);
  if (mode === "exit") setTimeout(() => process.exit(0), 50);
  if (mode === "throw") {
    setTimeout(() => {
      throw new Error("a bug in the host application");
    }, 50);
  }
}
