// Configuration errors carry a stable code and every problem found, each with the path inside the
// file (e.g. `routes[2].service`), so an operator can fix a file in one pass.
export interface ConfigIssue {
  path: string;
  message: string;
}

export type ConfigErrorCode = 'CONFIG_UNREADABLE' | 'CONFIG_PARSE' | 'CONFIG_INVALID';

export class ConfigError extends Error {
  readonly code: ConfigErrorCode;
  readonly file: string;
  readonly issues: readonly ConfigIssue[];

  constructor(code: ConfigErrorCode, file: string, issues: ConfigIssue[]) {
    super(formatIssues(file, issues));
    this.name = 'ConfigError';
    this.code = code;
    this.file = file;
    this.issues = issues;
  }
}

function formatIssues(file: string, issues: ConfigIssue[]): string {
  if (issues.length === 1) {
    const [i] = issues;
    return `${file}: ${i.path ? `${i.path}: ` : ''}${i.message}`;
  }
  return `${file}: ${issues.length} problems\n` + issues.map((i) => `  - ${i.path ? `${i.path}: ` : ''}${i.message}`).join('\n');
}
