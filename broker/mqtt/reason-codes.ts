// Every MQTT return / reason code the gateway sends, named once. CONNACK refusals are given to aedes
// in MQTT 3.1.1 numbering (aedes maps them to the MQTT 5 reason code in brackets).

/** CONNACK return codes, MQTT 3.1.1 §3.2.2.3 (MQTT 5 reason code in the comment). */
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

/** MQTT 5 DISCONNECT reason codes the server sends, §3.14.2.1. */
export const DISCONNECT = {
  NOT_AUTHORIZED: 0x87,
  SERVER_SHUTTING_DOWN: 0x8b,
  QUOTA_EXCEEDED: 0x97
} as const

/**
 * aedes 2.0.0-beta.1 reports a CONNECT whose keep-alive is outside `keepaliveLimit` with error code 6
 * (it also answers CONNACK 6, which MQTT 3.1.1 reserves).
 */
export const AEDES_KEEPALIVE_ERROR_CODE = 6
