import { createRequire } from 'node:module';

/**
 * pkcs11js is an optional dependency: a native addon that npm builds with python3, make and g++
 * and leaves out where it cannot, so the SDK, the agent and a broker with local keys install on
 * a machine without a C++ toolchain. Only `keys.provider: pkcs11` needs it.
 */
export const PKCS11_ADDON_MISSING =
  'pkcs11 needs the optional package pkcs11js (a native addon), which is not installed: install the package where python3, make and g++ can build it';

/** Why `keys.provider: pkcs11` cannot work here (to follow `keys.provider`), or undefined when pkcs11js can be loaded. */
export function pkcs11AddonMissing(): string | undefined {
  try {
    // Resolving finds the package without loading the addon; npm removes an optional package
    // whose build failed, so a package that resolves is one that built.
    createRequire(import.meta.url).resolve('pkcs11js');
    return undefined;
  } catch {
    return PKCS11_ADDON_MISSING;
  }
}
