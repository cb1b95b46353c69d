// Hand-built protobuf wire bytes, for tests that need input no well-behaved encoder produces.

export function varint (value: number | bigint): Buffer {
  let v = BigInt(value)
  const out: number[] = []
  do {
    const low = Number(v & 0x7fn)
    v >>= 7n
    out.push(v > 0n ? low | 0x80 : low)
  } while (v > 0n)
  return Buffer.from(out)
}

export function tag (field: number, wireType: number): Buffer {
  return varint(BigInt(field) * 8n + BigInt(wireType))
}

/** A length-delimited field (wire type 2). */
export function lenField (field: number, value: Uint8Array | string): Buffer {
  const bytes = typeof value === 'string' ? Buffer.from(value, 'utf8') : Buffer.from(value)
  return Buffer.concat([tag(field, 2), varint(bytes.length), bytes])
}

export function varintField (field: number, value: number | bigint): Buffer {
  return Buffer.concat([tag(field, 0), varint(value)])
}

export function fixed32Field (field: number, value: number): Buffer {
  const b = Buffer.alloc(4)
  b.writeUInt32LE(value >>> 0)
  return Buffer.concat([tag(field, 5), b])
}

export function fixed64Field (field: number): Buffer {
  return Buffer.concat([tag(field, 1), Buffer.alloc(8, 0xab)])
}

/** A minimal Record: version, to_id, from_id and then the given record-type field(s). */
export function recordWith (...rest: Buffer[]): Buffer {
  return Buffer.concat([lenField(1, '1.3'), lenField(2, 'os::to'), lenField(3, 'os::from'), ...rest])
}
