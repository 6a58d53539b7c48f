// Container healthcheck without curl: GET $ICP_HEALTH_URL (default the router's /healthz), exit 0 on 2xx.
// Each service's /healthz is liveness only (the agent's never calls the engine).
const url = process.env.ICP_HEALTH_URL || 'http://127.0.0.1:8080/healthz';
const timer = setTimeout(() => process.exit(1), 2500);
fetch(url)
  .then((res) => process.exit(res.ok ? 0 : 1))
  .catch(() => process.exit(1))
  .finally(() => clearTimeout(timer));
