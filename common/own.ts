// Lookups on plain objects by a key that may come from outside (a request, an engine, a node, a
// config file): `obj[key]` finds Object.prototype's members for `constructor`, `toString`,
// `__proto__`, ..., and `obj[key] = v` with `__proto__` replaces the prototype. These two only
// see own properties. eslint.config.js's local/no-plain-object-lookup points here.

/** `o[key]` when `key` is an own property of `o`, else undefined. */
export function own<V>(o: Readonly<Record<string, V>> | undefined, key: string): V | undefined {
  // An own property's descriptor: never one inherited from Object.prototype.
  return o === undefined ? undefined : (Object.getOwnPropertyDescriptor(o, key)?.value as V | undefined);
}

/** `o[key] = value` as an own, enumerable property, whatever the key (`__proto__` included). */
export function setOwn<V>(o: Record<string, V>, key: string, value: V): void {
  Object.defineProperty(o, key, { value, writable: true, enumerable: true, configurable: true });
}
