/** The HTTP client behind sandboxed fetch, loaded when a sandbox is first given a network. */
import { lazyModule } from "../../shared/lazy.js";

export const undici = lazyModule<typeof import("undici")>("undici");
