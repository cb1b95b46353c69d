// The gateway's USP Controller role against the real obuspa agent, over MQTT 5 (Response Topic) and
// MQTT 3.1.1 (`/reply-to=` suffix): responses matched by msg_id, USP Error messages surfaced with
// their code, per-path errors, timeouts; and the controller is an ordinary tenant client (its
// publish outside its tenant is refused by the same invariants as anyone's).
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { provision, waitFor } from '../helpers/gateway.ts'
import { UspController, UspErrorReply, UspTimeout } from '../../broker/usp/index.ts'
import { DEFAULT_CONTROLLER_ID } from '../../broker/certify/index.ts'
import { startLab, type Lab } from './lab.ts'

let lab: Lab
before(async () => { lab = await startLab() })
after(async () => { await lab.close() })

for (const v of ['5.0', '3.1.1'] as const) {
  test(`MQTT ${v}: Get, USP Error on a Set of a read-only parameter, unknown path, timeout`, { timeout: 120_000 }, async () => {
    const tenant = v === '5.0' ? 'ctl5' : 'ctl3'
    const eid = `os::00D09E-CTL${v === '5.0' ? '5' : '3'}`
    const { secret } = await provision(lab.t, tenant, eid, 'agent')
    const ctlSecret = (await provision(lab.t, tenant, DEFAULT_CONTROLLER_ID, 'controller')).secret
    await lab.agent(tenant, eid, { v, password: secret })
    await waitFor(() => lab.t.gw.sessions.ofIdentity(`${tenant}:${eid}`).length > 0, 20_000, 'obuspa online')
    const ctl = await UspController.connect({ host: '127.0.0.1', port: lab.t.mqttPort, tenant, endpointId: DEFAULT_CONTROLLER_ID, secret: ctlSecret, mqttVersion: v === '5.0' ? 5 : 4, requestTimeoutMs: 10_000, msgIdPrefix: `t${tenant}` })
    try {
      const r = await ctl.request(eid, { get: { paramPaths: ['Device.DeviceInfo.Manufacturer'] } })
      assert.equal(r.fromId, eid)
      assert.match(r.msgId, /^tctl.-get-\d+$/)
      const getResp = r.response.getResp as { reqPathResults: Array<{ resolvedPathResults: Array<{ resultParams: Record<string, string> }> }> }
      assert.ok(getResp.reqPathResults[0]!.resolvedPathResults[0]!.resultParams.Manufacturer)
      // the agent's answer came back on this controller's inbox with the version's reply-to convention
      const answer = ctl.traces.find(x => x.direction === 'received' && x.topic.startsWith(ctl.inbox))!
      if (v === '3.1.1') assert.match(answer.topic, /\/reply-to=ctl3%2Fusp%2Fagent%2F/)
      else assert.equal(answer.replyTo, `${tenant}/usp/agent/${eid}`)

      // a USP Error message (R-MSG.9: same msg_id) becomes UspErrorReply with the code's name
      await assert.rejects(
        ctl.request(eid, { set: { allowPartial: false, updateObjs: [{ objPath: 'Device.DeviceInfo.', paramSettings: [{ param: 'Manufacturer', value: 'x', required: true }] }] } }),
        (err: unknown) => err instanceof UspErrorReply && err.errCode >= 7000 && err.errCode < 8000 && /^USP Error 7\d{3} /.test(err.message)
      )
      // a path the agent does not have: a per-path error in the GetResp, not a failure of the exchange
      const missing = await ctl.request(eid, { get: { paramPaths: ['Device.NoSuchObject.'] } })
      const res = (missing.response.getResp as { reqPathResults: Array<{ errCode?: number }> }).reqPathResults[0]!
      assert.ok((res.errCode ?? 0) >= 7000, JSON.stringify(res))
      // nobody answers for an endpoint that is not there
      await assert.rejects(ctl.request('os::00D09E-NOBODY', { get: { paramPaths: ['Device.'] } }, { timeoutMs: 1500 }), (err: unknown) => err instanceof UspTimeout)
      // the controller is a tenant client like any other: another tenant's inbox is refused
      await assert.rejects(ctl.request(eid, { get: { paramPaths: ['Device.'] } }, { agentTopic: `other/usp/agent/${eid}`, timeoutMs: 3000 }))
    } finally {
      await ctl.close()
    }
  })
}
