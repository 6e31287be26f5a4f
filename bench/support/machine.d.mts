// Types for machine.mjs (plain JS so that the node-run runners can import it without tsx).
export interface MachineSpecs {
  readonly cpu: string;
  readonly cores: number;
  readonly memoryGiB: number;
  readonly os: string;
}

export interface RunInfo {
  readonly date: string;
  readonly node: string;
  readonly machine: MachineSpecs & { readonly redis: string };
}

export declare function machineSpecs(): MachineSpecs;
export declare function redisVersion(): string;
export declare function runInfo(): RunInfo;
