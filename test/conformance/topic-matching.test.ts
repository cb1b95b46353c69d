// §4.7 topic filter matching as the delivery patches use it (QoS and identifiers of matching subscriptions, shared groups).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { topicMatches } from '../../broker/mqtt/index.ts'

test('[MQTT-4.7.1-1..3] [MQTT-4.7.2-1] wildcards match levels as the specification says', () => {
  const cases: Array<[string, string, boolean]> = [
    ['a/b/c', 'a/b/c', true], ['a/b/c', 'a/b', false], ['a/b', 'a/b/c', false], ['a/b/c', 'a/bb/c', false],
    ['a/+/c', 'a/b/c', true], ['a/+/c', 'a//c', true], ['a/+', 'a/b/c', false], ['+', 'a', true], ['+/+', '/x', true],
    ['a/#', 'a', true], ['a/#', 'a/b/c', true], ['a/#', 'ab', false], ['#', 'a/b', true], ['a/b/#', 'a/b', true],
    ['+/#', 'a', true], ['#', '$SYS/x', false], ['+/x', '$SYS/x', false], ['$SYS/#', '$SYS/x', true],
    ['$share/g/a/+', 'a/b', true], ['$share/g/a/+', 'g/a/b', false], ['a/b/', 'a/b/', true], ['a/b/', 'a/b', false]
  ]
  for (const [filter, topic, expected] of cases) assert.equal(topicMatches(filter, topic), expected, `${filter} ~ ${topic}`)
})
