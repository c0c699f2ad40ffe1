/**
 * Time limits for tests that must also pass on a loaded machine (`npm run test:busy` runs the suite
 * with every core taken by a CPU hog; a shared CI runner is often no better).
 *
 * The rule they serve: a test that checks some limit other than time (memory, output, nesting,
 * requests) gives its eval a time limit far above its work, so that a slow machine cannot turn the
 * expected typed error into a TimeoutError. A test that checks the time limit itself keeps a short
 * limit, and bounds how long the eval took only by that limit plus generous slack.
 *
 * Importing this module has no side effects (node --test runs every .js file under dist/test/).
 */

/**
 * An eval time limit far above the work of any test: for evals that test something other than
 * time. It also covers a carrier's cold start, which counts against the eval that waits for it and
 * can take seconds on a busy machine. The heaviest evals (a result of 2.5 million objects: 2.2 s
 * of CPU, 4.5 s of wall time on a quiet 2-core machine) made the test that runs it, with a light
 * eval and four full GCs, take 57 s on 2 cores shared with two CPU hogs and other test runs (a
 * load average of 17): two minutes leaves room above that.
 */
export const LONG_TIMEOUT_MS = 120_000;

/**
 * Slack on top of a time limit before "it ended at its limit" becomes "it hung": the host's kill
 * grace, a carrier restart, and a machine whose cores are all busy.
 */
export const SLACK_MS = 5_000;
