// The aedes hooks of the gateway, assembled from the packet pipelines: connect.ts (preConnect,
// authenticate), publish.ts, subscribe.ts and deliver.ts. Every refusal becomes a security event.
import type { AedesOptions } from 'aedes'
import { connectHooks } from './connect.ts'
import { publishHook } from './publish.ts'
import { subscribeHook } from './subscribe.ts'
import { deliverHook } from './deliver.ts'
import { PipelineContext, type HookDeps } from './context.ts'

export type GatewayHooks = Required<Pick<AedesOptions, 'preConnect' | 'authenticate' | 'authorizePublish' | 'authorizeSubscribe' | 'authorizeForward'>>

export function createHooks (deps: HookDeps): GatewayHooks {
  const ctx = new PipelineContext(deps)
  return {
    ...connectHooks(ctx),
    authorizePublish: publishHook(ctx),
    authorizeSubscribe: subscribeHook(ctx),
    authorizeForward: deliverHook(ctx)
  }
}
