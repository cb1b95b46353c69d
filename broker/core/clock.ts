// The current time as ISO 8601 text, for the timestamps the gateway writes per connection and per
// USP Record (session state, endpoint registry, audit trail).

let lastMs = 0
let lastIso = ''
let lastSecond = -1
let secondPrefix = ''

/**
 * `new Date().toISOString()`, made once per millisecond (thousands of records share one) and from a
 * prefix made once per second: Date#toISOString cost ~1 µs alone, and `new Date().toISOString()` took
 * ~7 µs of a connect's ~1,100 µs in the fleet profile at 10,000 agents (twice per connect).
 */
export function isoNow (): string {
  const ms = Date.now()
  if (ms === lastMs) return lastIso
  lastMs = ms
  const second = Math.floor(ms / 1000)
  if (second !== lastSecond) {
    lastSecond = second
    const iso = new Date(second * 1000).toISOString() // …T08:00:01.000Z
    secondPrefix = iso.slice(0, iso.length - 4)
  }
  const milli = ms - second * 1000
  lastIso = `${secondPrefix}${milli < 10 ? '00' : milli < 100 ? '0' : ''}${milli}Z`
  return lastIso
}
