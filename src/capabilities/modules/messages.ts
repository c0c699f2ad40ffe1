/** What the host sends a carrier about modules. The carrier imports only these types. */

/** An import's target: a unit's key, or why it cannot be had (thrown where it is imported). */
export type ModuleLink = string | { error: { name: string; message: string } };

/**
 * One prepared entry point of a package ("npm:lodash-es@4.17.21", "npm:lodash-es@4.17.21/chunk"):
 * a CommonJS-style function body, and what each of its `require("…")` calls reaches.
 */
export interface ModuleUnit {
  key: string;
  code: string;
  links: Record<string, ModuleLink>;
}

/** Units to keep (sent once per carrier), and units the carrier may forget. Host → carrier. */
export interface ModulesMessage {
  t: "modules";
  units: ModuleUnit[];
  forget: string[];
}
