export async function runBenchmark(_options: { quick: boolean }): Promise<void> {
  throw new Error("not yet");
}
