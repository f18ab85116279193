// bench/nodelay.py --node: two mqtt.js consumers, with and without TCP_NODELAY, take turns
// sending refresh requests (MQTT 5 Response Topic and Correlation Data, QoS 1) and time each
// until its reply. Prints {"name": [seconds, ...]} as JSON. Env: MQTT_PORT, TOKEND_BASE.
import crypto from 'node:crypto'
import mqtt from 'mqtt'

const base = process.env.TOKEND_BASE
const rounds = Number(process.argv[2] ?? 200)

async function consumer (nodelay) {
  const client = await mqtt.connectAsync({ host: '127.0.0.1', port: Number(process.env.MQTT_PORT), protocolVersion: 5 })
  client.stream.setNoDelay(nodelay)
  const replyTopic = `${base}/response/refresh/bench-${crypto.randomUUID()}`
  await client.subscribeAsync(replyTopic, { qos: 1 })
  const waiting = new Map()
  client.on('message', (_topic, _payload, packet) => {
    waiting.get(packet.properties?.correlationData?.toString())?.()
  })
  return async () => {
    const id = crypto.randomUUID()
    const started = process.hrtime.bigint()
    const replied = new Promise(resolve => waiting.set(id, resolve))
    const properties = { responseTopic: replyTopic, correlationData: Buffer.from(id) }
    await client.publishAsync(`${base}/request/refresh`, JSON.stringify({ transaction: id }), { qos: 1, properties })
    await replied
    waiting.delete(id)
    return Number(process.hrtime.bigint() - started) / 1e9
  }
}

const askers = { 'Node (mqtt.js), setNoDelay(true)': await consumer(true), 'Node (mqtt.js), without': await consumer(false) }
const times = Object.fromEntries(Object.keys(askers).map(name => [name, []]))
for (const ask of Object.values(askers)) await ask() // warm up
for (let i = 0; i < rounds; i++) {
  for (const [name, ask] of Object.entries(askers)) times[name].push(await ask())
}
console.log(JSON.stringify(times))
process.exit(0)
