import type { CarrierCapability } from "./capability.js";
import { consoleCapability } from "../capabilities/console/carrier.js";
import { timersCapability } from "../capabilities/timers/carrier.js";
import { fetchCapability } from "../capabilities/fetch/carrier.js";
import { toolsCapability } from "../capabilities/tools/carrier.js";

/** Every capability's carrier half, installed into each eval's realm in this order. */
export const CARRIER_CAPABILITIES: readonly CarrierCapability[] = [consoleCapability, timersCapability, fetchCapability, toolsCapability];
