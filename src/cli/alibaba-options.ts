/**
 * The `--cloud alibaba` flags, shared by `snapcron report` and the controller's `/report`,
 * and their checking: one place, so both read ECS the same way.
 */
import { ACK_DISK_DRIVER } from '../api/warnings.ts';
import type { AlibabaOptions } from '../report/alibaba.ts';
import { UserError } from './errors.ts';
import { usageError, type Command } from './options.ts';

export type CloudOptions = AlibabaOptions & {
  endpoint: string | undefined;
  protocol: 'http' | 'https';
  timeoutMs: number;
  retries: number;
};

export const ALIBABA_FLAGS = {
  cloud: {
    type: 'string',
    value: 'PROVIDER',
    description:
      'alibaba: add the ECS snapshots behind the VolumeSnapshots (drift findings orphan, dangling, stuck, expiring; cost; ACK warnings); credentials from the default chain (ALIBABA_CLOUD_ACCESS_KEY_ID/_SECRET, RRSA, ECS RAM role)',
  },
  region: {
    type: 'string',
    value: 'ID',
    shownDefault: '$ALIBABA_CLOUD_REGION_ID',
    description: 'with --cloud alibaba: the ECS region, e.g. cn-hangzhou',
  },
  'cluster-id': {
    type: 'string',
    value: 'ID',
    shownDefault: 'orphans not searched',
    description:
      "with --cloud alibaba: the ACK cluster ID (the driver's ack.aliyun.com tag), to find orphans",
  },
  'ecs-endpoint': {
    type: 'string',
    value: 'HOST[:PORT]',
    shownDefault: 'ecs.REGION.aliyuncs.com',
    description: 'with --cloud alibaba: a private or test ECS endpoint (http://HOST:PORT for plain HTTP)',
  },
  'price-per-gb-month': {
    type: 'string',
    value: 'PRICE',
    shownDefault: 'no estimate',
    description:
      "with --cloud alibaba: your region's snapshot storage price per GB-month, for a monthly estimate",
  },
  'csi-driver': {
    type: 'string',
    default: ACK_DISK_DRIVER,
    value: 'NAME',
    description: 'with --cloud alibaba: the driver whose VolumeSnapshotContents are ECS snapshots',
  },
  'ecs-timeout': {
    type: 'string',
    default: '10',
    value: 'SECONDS',
    description: 'with --cloud alibaba: connect and read timeout of each ECS call',
  },
  'ecs-retries': {
    type: 'string',
    default: '4',
    value: 'N',
    description:
      'with --cloud alibaba: retries of a throttled, failed (5xx) or timed-out ECS call, with backoff',
  },
} as const;

/** The options of --cloud alibaba, checked; a usage error names the bad one. */
export function alibabaOptions(
  values: Record<string, string | boolean | undefined>,
  command: Command,
): CloudOptions {
  const region = (values.region as string | undefined) ?? process.env.ALIBABA_CLOUD_REGION_ID;
  if (!region) throw usageError(command, '--cloud alibaba needs --region (or ALIBABA_CLOUD_REGION_ID)');
  let price: number | null = null;
  if (values['price-per-gb-month'] !== undefined) {
    price = Number(values['price-per-gb-month']);
    if (!Number.isFinite(price) || price < 0)
      throw new UserError(
        `--price-per-gb-month "${String(values['price-per-gb-month'])}" must be a number, e.g. 0.017`,
        2,
      );
  }
  const timeout = Number(values['ecs-timeout']);
  if (!Number.isFinite(timeout) || timeout <= 0)
    throw new UserError(`--ecs-timeout "${String(values['ecs-timeout'])}" must be seconds above 0`, 2);
  const retries = Number(values['ecs-retries']);
  if (!Number.isInteger(retries) || retries < 0)
    throw new UserError(`--ecs-retries "${String(values['ecs-retries'])}" must be a whole number`, 2);
  let endpoint = values['ecs-endpoint'] as string | undefined;
  let protocol: 'http' | 'https' = 'https';
  if (endpoint?.startsWith('http://')) protocol = 'http';
  endpoint = endpoint?.replace(/^https?:\/\//, '').replace(/\/+$/, '');
  return {
    regionId: region,
    driver: values['csi-driver'] as string,
    clusterId: (values['cluster-id'] as string | undefined) ?? null,
    pricePerGbMonth: price,
    endpoint,
    protocol,
    timeoutMs: timeout * 1000,
    retries,
  };
}
