import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HealthPolicy, HealthThresholdsSchema, nodeVerdict } from '../../../node-agent/gpu/health-policy.ts';
import { emptyReading, type GpuReading } from '../../../node-agent/gpu/types.ts';
import type { XidEvent } from '../../../node-agent/gpu/kernel-log.ts';

function gpu(patch: (r: GpuReading) => void = () => {}): GpuReading {
  const r = emptyReading();
  r.index = 0;
  r.uuid = 'GPU-test';
  r.name = 'Test GPU';
  r.temperatureGpuC = 50;
  r.temperatureSlowdownC = 90;
  r.ecc = { correctedVolatile: 0, correctedAggregate: 0, uncorrectedVolatile: 0, uncorrectedAggregate: 0 };
  r.throttle = {
    hw_slowdown: false,
    hw_thermal_slowdown: false,
    sw_thermal_slowdown: false,
    hw_power_brake_slowdown: false,
    sw_power_cap: false,
  };
  patch(r);
  return r;
}

test('defaults parse from an empty object', () => {
  assert.deepEqual(HealthThresholdsSchema.parse({}), {
    temperatureSlowdownMarginC: 0,
    memoryTemperatureHighC: 85,
    memoryTemperatureMarginC: 0,
    risingHoldMs: 600000,
    xidHoldMs: 3600000,
  });
});

test('healthy baseline', () => {
  assert.deepEqual(new HealthPolicy().evaluateGpu(gpu()), { verdict: 'HEALTHY', reasons: [] });
});

const single: [string, (r: GpuReading) => void, string, string][] = [
  [
    'remapped rows failure',
    (r) => {
      r.remappedRows.failure = true;
    },
    'UNHEALTHY',
    'remapped_rows_failure',
  ],
  [
    'remapped rows pending',
    (r) => {
      r.remappedRows.pending = true;
    },
    'UNHEALTHY',
    'remapped_rows_pending',
  ],
  [
    'hw slowdown',
    (r) => {
      r.throttle.hw_slowdown = true;
    },
    'UNHEALTHY',
    'hw_slowdown',
  ],
  [
    'hw thermal slowdown',
    (r) => {
      r.throttle.hw_thermal_slowdown = true;
    },
    'UNHEALTHY',
    'hw_thermal_slowdown',
  ],
  [
    'temperature at slowdown threshold',
    (r) => {
      r.temperatureGpuC = 90;
    },
    'UNHEALTHY',
    'temperature_at_slowdown_threshold',
  ],
  [
    'T.Limit headroom at slowdown',
    (r) => {
      r.temperatureSlowdownC = null;
      r.temperatureTlimitC = -2;
      r.temperatureSlowdownTlimitC = -2;
    },
    'UNHEALTHY',
    'temperature_at_slowdown_threshold',
  ],
  [
    'sw thermal slowdown',
    (r) => {
      r.throttle.sw_thermal_slowdown = true;
    },
    'DEGRADED',
    'sw_thermal_slowdown',
  ],
  [
    'hw power brake',
    (r) => {
      r.throttle.hw_power_brake_slowdown = true;
    },
    'DEGRADED',
    'hw_power_brake',
  ],
  [
    'memory temperature high (default 85 C)',
    (r) => {
      r.temperatureMemoryC = 85;
    },
    'DEGRADED',
    'memory_temperature_high',
  ],
  [
    'memory temperature high (GPU-reported limit)',
    (r) => {
      r.temperatureMemoryC = 80;
      r.temperatureMemoryMaxC = 80;
    },
    'DEGRADED',
    'memory_temperature_high',
  ],
];
for (const [name, patch, verdict, reason] of single) {
  test(`rule: ${name}`, () => {
    assert.deepEqual(new HealthPolicy().evaluateGpu(gpu(patch)), { verdict, reasons: [reason] });
  });
}

test('below the slowdown threshold and SW power cap alone stay healthy', () => {
  const v = new HealthPolicy().evaluateGpu(
    gpu((r) => {
      r.temperatureGpuC = 89;
      r.throttle.sw_power_cap = true;
      r.temperatureMemoryC = 84;
    }),
  );
  assert.equal(v.verdict, 'HEALTHY');
});

test('slowdown margin is configurable', () => {
  const v = new HealthPolicy({ temperatureSlowdownMarginC: 5 }).evaluateGpu(
    gpu((r) => {
      r.temperatureGpuC = 86;
    }),
  );
  assert.deepEqual(v.reasons, ['temperature_at_slowdown_threshold']);
});

test('uncorrected ECC: rising -> UNHEALTHY, steady after the hold -> HEALTHY', () => {
  const p = new HealthPolicy({ risingHoldMs: 10_000 });
  assert.equal(p.evaluateGpu(gpu(), 0).verdict, 'HEALTHY'); // first reading: nothing to compare with
  const up = p.evaluateGpu(
    gpu((r) => {
      r.ecc.uncorrectedVolatile = 1;
    }),
    5_000,
  );
  assert.deepEqual(up, { verdict: 'UNHEALTHY', reasons: ['ecc_uncorrected_rising'] });
  assert.equal(
    p.evaluateGpu(
      gpu((r) => {
        r.ecc.uncorrectedVolatile = 1;
      }),
      10_000,
    ).verdict,
    'UNHEALTHY',
  ); // held
  assert.equal(
    p.evaluateGpu(
      gpu((r) => {
        r.ecc.uncorrectedVolatile = 1;
      }),
      16_000,
    ).verdict,
    'HEALTHY',
  ); // steady, hold over
});

test('uncorrected ECC steady non-zero from the start is not rising', () => {
  const p = new HealthPolicy({ risingHoldMs: 0 });
  for (let t = 0; t < 3; t++)
    assert.equal(
      p.evaluateGpu(
        gpu((r) => {
          r.ecc.uncorrectedAggregate = 7;
        }),
        t * 1000,
      ).verdict,
      'HEALTHY',
    );
});

test('uncorrected ECC: aggregate rising counts, volatile reset clears the hold', () => {
  const p = new HealthPolicy();
  p.evaluateGpu(
    gpu((r) => {
      r.ecc.uncorrectedVolatile = 2;
      r.ecc.uncorrectedAggregate = 2;
    }),
    0,
  );
  assert.equal(
    p.evaluateGpu(
      gpu((r) => {
        r.ecc.uncorrectedVolatile = 3;
        r.ecc.uncorrectedAggregate = 3;
      }),
      1000,
    ).verdict,
    'UNHEALTHY',
  );
  assert.equal(
    p.evaluateGpu(
      gpu((r) => {
        r.ecc.uncorrectedVolatile = 0;
        r.ecc.uncorrectedAggregate = 3;
      }),
      2000,
    ).verdict,
    'HEALTHY',
  );
});

test('corrected ECC rising -> DEGRADED; steady -> HEALTHY', () => {
  const p = new HealthPolicy({ risingHoldMs: 0 });
  p.evaluateGpu(gpu(), 0);
  assert.deepEqual(
    p.evaluateGpu(
      gpu((r) => {
        r.ecc.correctedVolatile = 5;
      }),
      1000,
    ),
    { verdict: 'DEGRADED', reasons: ['ecc_corrected_rising'] },
  );
  assert.equal(
    p.evaluateGpu(
      gpu((r) => {
        r.ecc.correctedVolatile = 5;
      }),
      2000,
    ).verdict,
    'HEALTHY',
  );
});

test('N/A ECC never counts as rising', () => {
  const p = new HealthPolicy();
  p.evaluateGpu(
    gpu((r) => {
      r.ecc.uncorrectedVolatile = null;
    }),
    0,
  );
  assert.equal(
    p.evaluateGpu(
      gpu((r) => {
        r.ecc.uncorrectedVolatile = 4;
      }),
      1,
    ).verdict,
    'HEALTHY',
  );
});

function xid(n: number, severity: XidEvent['severity'], epochMs: number | null): XidEvent {
  return {
    xid: n,
    pci: '0000:19:00',
    pid: null,
    process: null,
    message: '',
    severity,
    inferred: false,
    timestamp: { kind: 'iso', raw: null, epochMs, bootSeconds: null },
  };
}

test('Xids: unhealthy / degraded by table, informational ignored, old ones expire', () => {
  const p = new HealthPolicy({ xidHoldMs: 60_000 });
  assert.deepEqual(p.evaluateGpu(gpu(), 100_000, [xid(48, 'unhealthy', 90_000)]), { verdict: 'UNHEALTHY', reasons: ['xid_48'] });
  assert.deepEqual(p.evaluateGpu(gpu(), 100_000, [xid(94, 'degraded', 90_000)]), { verdict: 'DEGRADED', reasons: ['xid_94'] });
  assert.deepEqual(p.evaluateGpu(gpu(), 100_000, [xid(13, 'informational', 90_000)]), { verdict: 'HEALTHY', reasons: [] });
  assert.deepEqual(p.evaluateGpu(gpu(), 100_000, [xid(79, 'unhealthy', 10_000)]), { verdict: 'HEALTHY', reasons: [] });
});

test('node verdict is the worst GPU verdict plus node reasons', () => {
  assert.deepEqual(
    nodeVerdict([
      { verdict: 'HEALTHY', reasons: [] },
      { verdict: 'DEGRADED', reasons: ['hw_power_brake'] },
    ]),
    { verdict: 'DEGRADED', reasons: ['hw_power_brake'] },
  );
  assert.deepEqual(nodeVerdict([{ verdict: 'DEGRADED', reasons: ['sw_thermal_slowdown'] }], ['gpu_missing']), {
    verdict: 'UNHEALTHY',
    reasons: ['gpu_missing', 'sw_thermal_slowdown'],
  });
});
