/**
 * The latency client of the app benchmark, run as a process of its own: GETs `url` `count` times,
 * one at a time over one keep-alive connection, and prints each request's time in µs (JSON).
 */
import { Agent, request } from "node:http";

const [url, count] = process.argv.slice(2);
const agent = new Agent({ keepAlive: true, maxSockets: 1 });

function once(): Promise<number> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    request(`${url}/`, { agent }, (response) => {
      response.on("data", () => {});
      response.on("end", () => resolve((performance.now() - started) * 1000));
    })
      .on("error", reject)
      .end();
  });
}

const times: number[] = [];
for (let i = 0; i < 100; i++) await once();
for (let i = 0; i < Number(count); i++) times.push(await once());
agent.destroy();
process.stdout.write(JSON.stringify(times));
