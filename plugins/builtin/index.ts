// The built-in plugins, all written on the public plugin API.
import type { PluginDefinition } from '../api.ts';

export const BUILTIN_PLUGINS: readonly PluginDefinition<never>[] = [];
