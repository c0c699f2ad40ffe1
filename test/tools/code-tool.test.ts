/**
 * createCodeTool: code mode as one framework-neutral tool, and that tool plugged into the Vercel
 * AI SDK as its README shows, driven by the SDK's own generateText (with the SDK's mock model in
 * place of an LLM: the model's tool call is scripted, everything after it is the SDK's and ours).
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { z } from "zod";
import { generateText, jsonSchema, stepCountIs, tool as aiTool } from "ai";
import { MockLanguageModelV4 } from "ai/test";
import { createCodeTool, tool, type ExecuteCodeResult } from "../../src/index.js";

const FIXTURE = fileURLToPath(new URL("./mcp-fixture.js", import.meta.url));

const tools = {
  crm: {
    findCustomer: tool({
      description: "Finds a customer by email",
      inputSchema: z.object({ email: z.string().email() }),
      execute: ({ email }) => ({ id: email.length, email, plan: "pro" }),
    }),
  },
};

describe("createCodeTool", () => {
  test("one tool: its description declares the tools; execute runs code that calls them", async () => {
    await using codeTool = await createCodeTool({ tools, mcp: { fx: { command: process.execPath, args: [FIXTURE, "stdio"] } } });
    assert.equal(codeTool.name, "execute_code");
    assert.match(codeTool.description, /declare const tools: \{/);
    assert.match(codeTool.description, /findCustomer\(input: \{[\s\S]*?email: string;/);
    assert.match(codeTool.description, /fx: \{/);
    assert.deepEqual(codeTool.inputSchema.required, ["code"]);
    const result = await codeTool.execute({ code: `const c = await tools.crm.findCustomer({ email: "ada@example.com" }); const { sum } = await tools.fx.add({ a: c.id, b: 1 }); ({ plan: c.plan, sum })` });
    assert.equal(result.ok, true);
    assert.deepEqual(result.value, { plan: "pro", sum: 16 });
    assert.deepEqual(result.toolCalls.map((call) => call.tool), ["crm.findCustomer", "fx.add"]);
    assert.match(result.text, /"plan": "pro"/);
  });

  test("the sandbox persists between calls, and code errors are results, not exceptions", async () => {
    await using codeTool = await createCodeTool({ tools, sandbox: { timeoutMs: 10_000 } });
    await codeTool.execute({ code: `var seen = []` });
    await codeTool.execute({ code: `seen.push(1)` });
    assert.deepEqual((await codeTool.execute({ code: `seen` })).value, [1]);
    const failed = await codeTool.execute({ code: `await tools.crm.findCustomer({ email: "not an email" })` });
    assert.equal(failed.ok, false);
    assert.equal(failed.error!.name, "TypeError");
    assert.match(failed.error!.message, /input\.email/);
    await assert.rejects(codeTool.execute({ code: 42 } as never), /execute_code: `code` must be a string/);
  });

  test("a value far larger as JSON than in memory is cut, not expanded", async () => {
    await using codeTool = await createCodeTool();
    const result = await codeTool.execute({ code: `let a = { v: 1 }; for (let i = 0; i < 40; i++) a = [a, a]; a` });
    assert.equal(result.ok, true);
    const text = JSON.stringify(result.value);
    assert.ok(text.includes("[…]") && text.length < 2_000_000, `${text.length} characters`);
  });

  test("plugged into the AI SDK: generateText runs the model's code through it", async () => {
    await using codeTool = await createCodeTool({ tools });
    let calls = 0;
    const model = new MockLanguageModelV4({
      doGenerate: async () => {
        calls++;
        if (calls === 1) {
          const input = JSON.stringify({ code: `(await tools.crm.findCustomer({ email: "grace@example.com" })).plan` });
          return {
            content: [{ type: "tool-call", toolCallId: "call-1", toolName: "execute_code", input }],
            finishReason: { unified: "tool-calls", raw: undefined },
            usage: usage(),
            warnings: [],
          };
        }
        return { content: [{ type: "text", text: "done" }], finishReason: { unified: "stop", raw: undefined }, usage: usage(), warnings: [] };
      },
    });
    const result = await generateText({
      model,
      prompt: "What plan is grace@example.com on?",
      tools: {
        [codeTool.name]: aiTool({
          description: codeTool.description,
          inputSchema: jsonSchema<{ code: string; language?: "js" | "ts" }>(codeTool.inputSchema),
          execute: async (input) => codeTool.execute(input),
        }),
      },
      stopWhen: stepCountIs(3),
    });
    const toolResult = result.steps[0]!.toolResults[0]!;
    assert.equal(toolResult.toolName, "execute_code");
    assert.equal((toolResult.output as ExecuteCodeResult).value, "pro");
    assert.equal(result.text, "done");
  });
});

function usage() {
  return {
    inputTokens: { total: 1, noCache: 1, cacheRead: undefined, cacheWrite: undefined },
    outputTokens: { total: 1, text: 1, reasoning: undefined },
  };
}
