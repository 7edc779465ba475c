// Drives kowai's OpenAI-compatible endpoint with the official openai package,
// unmodified. Run by gateway/clustertest/openai_test.go against a real node:
//   KOWAI_BASE_URL=http://127.0.0.1:PORT/v1 KOWAI_API_KEY=kowai_... node sdk.mjs
// It prints one line per check and exits non-zero on the first failure.
import OpenAI from "openai";

const baseURL = process.env.KOWAI_BASE_URL;
const apiKey = process.env.KOWAI_API_KEY;
if (!baseURL || !apiKey) {
  console.error("set KOWAI_BASE_URL and KOWAI_API_KEY");
  process.exit(2);
}
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0 });

function check(cond, what, detail) {
  if (!cond) {
    throw new Error(`${what}: ${JSON.stringify(detail)}`);
  }
  console.log(`ok ${what}`);
}

async function main() {
  // List models: the built-in agents are there.
  const ids = [];
  for await (const m of client.models.list()) {
    ids.push(m.id);
  }
  check(["chat", "advanced-chat", "analysis", "react"].every((id) => ids.includes(id)), "models.list", ids);

  // A completion. The offline model is deterministic: the same messages
  // streamed below must give the same text.
  const messages = [
    { role: "user", content: "Hello" },
    { role: "assistant", content: "Hi, how can I help?" },
    { role: "user", content: "What is kowai?" },
  ];
  const c = await client.chat.completions.create({
    model: "chat",
    messages,
    temperature: 0.2,
    max_tokens: 200,
    seed: 1,
    user: "sdk-test",
  });
  const text = c.choices[0]?.message?.content ?? "";
  check(c.object === "chat.completion" && text.length > 0 && c.choices[0].finish_reason === "stop", "chat.completions.create", c);
  check(c.usage && c.usage.total_tokens === c.usage.prompt_tokens + c.usage.completion_tokens, "usage", c.usage);

  // A streamed completion with usage.
  const stream = await client.chat.completions.create({
    model: "chat",
    messages,
    temperature: 0.2,
    max_tokens: 200,
    seed: 1,
    stream: true,
    stream_options: { include_usage: true },
  });
  let streamed = "";
  let usage = null;
  let finish = null;
  for await (const chunk of stream) {
    for (const choice of chunk.choices) {
      streamed += choice.delta?.content ?? "";
      finish = choice.finish_reason ?? finish;
    }
    if (chunk.usage) usage = chunk.usage;
  }
  check(streamed === text && finish === "stop", "stream text and finish_reason", { streamed, text, finish });
  check(usage && usage.total_tokens > 0, "stream usage", usage);

  // Errors map to the SDK's error classes.
  try {
    await client.chat.completions.create({ model: "no-such-agent", messages: [{ role: "user", content: "hi" }] });
    check(false, "unknown model", "no error");
  } catch (e) {
    check(e instanceof OpenAI.NotFoundError && e.code === "model_not_found", "unknown model -> NotFoundError", { name: e.name, code: e.code });
  }
  try {
    await client.chat.completions.create({ model: "chat", messages: [{ role: "user", content: "hi" }], n: 2 });
    check(false, "n=2", "no error");
  } catch (e) {
    check(e instanceof OpenAI.BadRequestError && e.param === "n", "n=2 -> BadRequestError", { name: e.name, param: e.param });
  }
  const bad = new OpenAI({ baseURL, apiKey: "kowai_" + "A".repeat(43), maxRetries: 0 });
  try {
    await bad.models.list();
    check(false, "bad key", "no error");
  } catch (e) {
    check(e instanceof OpenAI.AuthenticationError && e.code === "invalid_api_key", "bad key -> AuthenticationError", { name: e.name, code: e.code });
  }
}

main().catch((e) => {
  console.error(`FAIL ${e.message}`);
  process.exit(1);
});
