/**
 * The environment the S3 benches (copy.ts, s3-restore.ts) run the CLI in: a home of their own,
 * the bench password for both repositories, and s3rver's credentials (test/helpers/s3rver.ts).
 * BENCH_SLUICE_MEMORY=64M runs every command with that --memory.
 */
import { S3RVER_CREDENTIALS } from '../test/helpers/s3rver.js'

export function s3BenchEnv(home: string): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH,
    HOME: home,
    SLUICE_PASSWORD: 'bench',
    SLUICE_FROM_PASSWORD: 'bench',
    AWS_ACCESS_KEY_ID: S3RVER_CREDENTIALS.accessKeyId,
    AWS_SECRET_ACCESS_KEY: S3RVER_CREDENTIALS.secretAccessKey,
    AWS_REGION: 'us-east-1',
    AWS_EC2_METADATA_DISABLED: 'true',
    ...(process.env.BENCH_SLUICE_MEMORY ? { SLUICE_MEMORY: process.env.BENCH_SLUICE_MEMORY } : {}),
  }
}
