// @peculiar/x509 uses tsyringe, which refuses to load unless a Reflect
// metadata API exists (it normally comes from the `reflect-metadata`
// package, which is not a dependency). tsyringe only reads/writes a few
// metadata keys on classes, so this minimal WeakMap-backed shim is enough.
// It installs nothing if a real polyfill is already present.

type MetadataMap = Map<unknown, unknown>
const metadata = new WeakMap<object, MetadataMap>()
const reflect = Reflect as unknown as Record<string, unknown>

if (typeof reflect.getMetadata !== 'function') {
  reflect.defineMetadata = (key: unknown, value: unknown, target: object): void => {
    let map = metadata.get(target)
    if (map === undefined) metadata.set(target, map = new Map())
    map.set(key, value)
  }
  reflect.getOwnMetadata = (key: unknown, target: object): unknown => metadata.get(target)?.get(key)
  reflect.getMetadata = (key: unknown, target: object): unknown => {
    for (let o: object | null = target; o !== null && o !== undefined; o = Object.getPrototypeOf(o) as object | null) {
      const map = metadata.get(o)
      if (map?.has(key) === true) return map.get(key)
    }
    return undefined
  }
}
