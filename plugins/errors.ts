// Errors of the plugin layer: loading, validating and instantiating plugins. Each carries a code
// and, for config problems, the path inside the config file (`routes[2].plugins[0].cors.origins`).
import type { ConfigIssue } from '../config/errors.ts';

export type PluginErrorCode = 'PLUGIN_NOT_FOUND' | 'PLUGIN_INVALID' | 'PLUGIN_CONFIG_INVALID' | 'PLUGIN_LOAD_FAILED' | 'PLUGIN_CREATE_FAILED';

export class PluginError extends Error {
  readonly code: PluginErrorCode;
  readonly issues: readonly ConfigIssue[];

  constructor(code: PluginErrorCode, message: string, issues: ConfigIssue[] = [], options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'PluginError';
    this.code = code;
    this.issues = issues;
  }
}
