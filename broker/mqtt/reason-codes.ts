// Every MQTT return / reason code the gateway sends, named once. CONNACK refusals are given to aedes
// in MQTT 3.1.1 numbering (aedes maps them to the MQTT 5 reason code in brackets).

/**
 * CONNACK return codes, MQTT 3.1.1 §3.2.2.3 (MQTT 5 reason code in the comment). Only the defined
 * codes 1-5 are ever sent: aedes' own code 6 (keep-alive outside its limit) is never reached,
 * because the gateway checks keep-alive itself (connect.ts, keepAliveInRange).
 */
export const CONNACK = {
  /** 0x85 Client Identifier not valid */
  IDENTIFIER_REJECTED: 2,
  /** 0x88 Server unavailable */
  SERVER_UNAVAILABLE: 3,
  /** 0x86 Bad User Name or Password */
  BAD_USERNAME_OR_PASSWORD: 4,
  /** 0x87 Not authorized */
  NOT_AUTHORIZED: 5
} as const

/** MQTT 5 CONNACK reason codes that have no MQTT 3.1.1 equivalent, §3.2.2.2 (set by the connack patch). */
export const CONNACK_V5 = {
  /** 0x9F Connection rate exceeded: the (username, address) is in authentication back-off. */
  CONNECTION_RATE_EXCEEDED: 0x9f,
  /** 0x97 Quota exceeded: the tenant's connection quota is used up. */
  QUOTA_EXCEEDED: 0x97
} as const

/** MQTT 5 DISCONNECT reason codes the server sends, §3.14.2.1. */
export const DISCONNECT = {
  NOT_AUTHORIZED: 0x87,
  SERVER_SHUTTING_DOWN: 0x8b,
  /** the client sent more unacknowledged QoS 2 PUBLISHes than the CONNACK Receive Maximum [MQTT-3.3.4-9] */
  RECEIVE_MAXIMUM_EXCEEDED: 0x93,
  QUOTA_EXCEEDED: 0x97
} as const
