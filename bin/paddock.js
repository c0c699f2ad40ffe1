#!/usr/bin/env node
import("../dist/src/cli/main.js").catch((error) => {
  if (error?.code === "ERR_MODULE_NOT_FOUND") {
    console.error("paddock is not built yet: run `npm install` (or `npm run build`) in the package first.");
    process.exit(1);
  }
  throw error;
});
