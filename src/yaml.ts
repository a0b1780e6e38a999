/**
 * The YAML library, loaded when first needed: reading a kubeconfig file or manifests, printing
 * YAML. A controller in a pod (in-cluster credentials) needs none of it, and its 190 modules
 * would stay in its memory for its whole life.
 */
import { createRequire } from 'node:module';
import type * as Yaml from 'yaml';

const require = createRequire(import.meta.url);

export const yaml = (): typeof Yaml => require('yaml') as typeof Yaml;
