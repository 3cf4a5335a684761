/** Env for a meshgate process under test: nothing from the outer environment may redirect it. */
export function cleanEnv(level: string): Record<string, string> {
  return {
    MESHGATE_LOG_LEVEL: level,
    MESHGATE_REDIS_URL: '',
    MESHGATE_ADMIN_TOKEN: '',
    MESHGATE_DC: '',
    MESHGATE_ZONE: '',
    MESHGATE_STATE_DIR: '',
    MESHGATE_INSTANCE: '',
    MESHGATE_ADVERTISE_ADDRESS: '',
  };
}
