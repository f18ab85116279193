// A consumer of mqtt-tokend in Node, from the published contract alone (docs/consumers.md).
// Needs the npm package `mqtt` (npm ci here); Fernet is decoded with node:crypto.
//
//   node consumer.mjs token      print a valid access token
//   node consumer.mjs rejected   report the current token as refused (a 401); print the new one
//   node consumer.mjs refresh    ask for a refresh; print the reply's JSON
//
// Settings from the environment: MQTT_HOST (127.0.0.1), MQTT_PORT (1883), MQTT_USERNAME,
// MQTT_PASSWORD, MQTT_PROTOCOL (5, or 3 for MQTT 3.1.1), TOKEND_BASE (lofi/spotify),
// TOKEND_KEY_FILE (/etc/mqtt-tokend/fernet.key), TOKEND_NODELAY (1; 0 to see the difference).
import crypto from 'node:crypto'
import fs from 'node:fs'
import mqtt from 'mqtt'

const env = process.env
const base = env.TOKEND_BASE ?? 'lofi/spotify'
const keyFile = env.TOKEND_KEY_FILE ?? '/etc/mqtt-tokend/fernet.key'
const mqtt5 = env.MQTT_PROTOCOL !== '3'

// Fernet: 0x80 | time (8) | IV (16) | AES-128-CBC ciphertext | HMAC-SHA256 (32), base64url.
// Never a TTL (the npm `fernet` package defaults to 60 s): a retained token may be most of an
// hour old; its own expires_at decides. Every line of the key file is a key (rotation), and the
// file is read on each call, so a rotated key is picked up.
function decrypt (token) {
  const raw = Buffer.from(token, 'base64url')
  const keys = fs.readFileSync(keyFile, 'ascii').split(/\s+/).filter(k => k && k[0] !== '#')
  for (const key of keys.map(k => Buffer.from(k, 'base64url'))) {
    const mac = crypto.createHmac('sha256', key.subarray(0, 16)).update(raw.subarray(0, -32))
    const fernet = raw.length >= 57 && raw[0] === 0x80 // version 0x80, and long enough
    if (!fernet || !crypto.timingSafeEqual(mac.digest(), raw.subarray(-32))) continue
    const aes = crypto.createDecipheriv('aes-128-cbc', key.subarray(16), raw.subarray(9, 25))
    return JSON.parse(Buffer.concat([aes.update(raw.subarray(25, -32)), aes.final()]))
  }
  throw new Error(`the token does not decrypt with any key in ${keyFile}`)
}

function connect () {
  const client = mqtt.connect({
    host: env.MQTT_HOST ?? '127.0.0.1',
    port: Number(env.MQTT_PORT ?? 1883),
    protocolVersion: mqtt5 ? 5 : 4,
    username: env.MQTT_USERNAME,
    password: env.MQTT_PASSWORD
  })
  // mqtt.js never sets TCP_NODELAY: a small packet would wait up to 40 ms for a delayed ACK.
  client.on('connect', () => client.stream.setNoDelay?.(env.TOKEND_NODELAY !== '0'))
  client.on('error', err => { console.error(`consumer.mjs: ${err.message}`); process.exit(1) })
  return client
}

// The newest message on <base>/token (retained, then each new token), kept as it comes.
let latest = null
function follow (client) {
  client.on('message', (topic, payload) => { if (topic === `${base}/token`) latest = payload })
  return client.subscribeAsync(`${base}/token`, { qos: 1 })
}

// The token, decrypted, once one is still good for 5 s (and is not `otherThan`).
function token (client, otherThan) {
  return new Promise(resolve => {
    const check = () => {
      if (!latest?.length) return // none yet, or empty: no valid token right now
      const found = decrypt(latest.toString('ascii'))
      if (found.expires_at - 5 > Date.now() / 1000 && found.access_token !== otherThan) {
        client.off('message', check)
        resolve(found)
      }
    }
    client.on('message', check)
    check()
  })
}

// A refresh request, answered on a reply topic of our own with our Correlation Data (MQTT 5),
// or on the shared reply topic, where ours is the reply with our transaction (MQTT 3.1.1).
async function refresh (client, fields = {}) {
  const transaction = crypto.randomUUID() // unique across every client, not just this one
  const replyTopic = `${base}/response/refresh` + (mqtt5 ? `/${transaction}` : '')
  await client.subscribeAsync(replyTopic, { qos: 1 })
  const reply = new Promise(resolve => {
    const seen = (topic, payload) => {
      const body = topic === replyTopic ? JSON.parse(payload) : null
      if (body?.transaction === transaction) { client.off('message', seen); resolve(body) }
    }
    client.on('message', seen)
  })
  const properties = { responseTopic: replyTopic, correlationData: Buffer.from(transaction) }
  const request = JSON.stringify({ transaction, ...fields })
  const options = mqtt5 ? { qos: 1, properties } : { qos: 1 }
  await client.publishAsync(`${base}/request/refresh`, request, options)
  const answer = await reply
  await client.unsubscribeAsync(replyTopic)
  return answer
}

async function main (mode) {
  const client = connect()
  setTimeout(() => { console.error('consumer.mjs: timed out'); process.exit(1) }, 10_000).unref()
  await follow(client)
  const current = await token(client)
  if (mode === 'token') {
    console.log(current.access_token)
  } else if (mode === 'rejected') { // Spotify answered 401: tell the agent, take the new token
    const sha = crypto.createHash('sha256').update(current.access_token).digest('hex')
    const answer = await refresh(client, { reason: 'rejected', token_sha256: sha })
    console.log(JSON.stringify(answer.data.refreshed))
    console.log((await token(client, current.access_token)).access_token)
  } else if (mode === 'refresh') {
    console.log(JSON.stringify(await refresh(client)))
  } else {
    throw new Error(`unknown mode ${mode}: token, rejected or refresh`)
  }
  await client.endAsync()
}

await main(process.argv[2] ?? 'token')
