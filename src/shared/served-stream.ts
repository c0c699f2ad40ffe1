/**
 * A byte stream fed from elsewhere (frames from the other side of the pipe), read no faster than
 * its reader reads: used by both sides, for the bodies that cross between host and carrier.
 */

/**
 * `serve` hands the controller what there is now (a chunk, the end, an error) and says whether
 * there was anything; when there was not, the read waits until the source calls the function it
 * gave `whenMore`. Served at once when a chunk is there, otherwise when one arrives (and never
 * from inside a Promise executor, whose frame would show in the stack of an error made there).
 */
export function servedStream(
  serve: (controller: ReadableStreamDefaultController<Uint8Array>) => boolean,
  whenMore: (retry: () => void) => void,
  cancel?: () => void,
): ReadableStream<Uint8Array> {
  return new ReadableStream<Uint8Array>(
    {
      pull: (controller) => {
        if (serve(controller)) return undefined;
        return new Promise<void>((resolve) => {
          const retry = () => (serve(controller) ? resolve() : whenMore(retry));
          whenMore(retry);
        });
      },
      ...(cancel ? { cancel } : {}),
    },
    { highWaterMark: 0 },
  );
}
