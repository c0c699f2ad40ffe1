/**
 * Run by resources.test.ts in a process whose file-descriptor limit it lowers once loaded (prlimit): creates
 * sandboxes until the host runs out of descriptors, then checks that the failure is typed, that
 * the sandboxes it has keep working, and that creating works again once some are closed. Prints
 * one JSON line with what it saw. Run any other way (node --test runs every file), it does nothing.
 */
import { Sandbox, configurePool, CarrierStartError } from "../../src/index.js";

if (process.env.PADDOCK_FD_LIMIT_CHILD === "1") {
  configurePool({ size: 0 });
  // Everything is loaded: the parent may lower the limit now (loading modules needs descriptors).
  process.stdout.write("loaded\n");
  await new Promise((resolve) => process.stdin.once("data", resolve));
  process.stdin.destroy();
  const sandboxes: Sandbox[] = [];
  let failure: { name: string; message: string; typed: boolean } | undefined;
  for (let attempt = 0; attempt < 500 && !failure; attempt++) {
    try {
      sandboxes.push(await Sandbox.create());
    } catch (error) {
      failure = { name: (error as Error).name, message: (error as Error).message, typed: error instanceof CarrierStartError };
    }
  }
  const stillWorking = (await Promise.all(sandboxes.map((sandbox) => sandbox.eval("1 + 1")))).every((value) => value === 2);
  const closing = sandboxes.splice(0, Math.ceil(sandboxes.length / 2));
  await Promise.all(closing.map((sandbox) => sandbox.close()));
  const again = await Sandbox.create();
  const recovered = (await again.eval("20 + 22")) === 42;
  await again.close();
  await Promise.all(sandboxes.map((sandbox) => sandbox.close()));
  process.stdout.write(`${JSON.stringify({ created: closing.length + sandboxes.length, failure, stillWorking, recovered })}\n`);
}
