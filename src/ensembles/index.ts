/** E³ (partitioned batch ensembles of a V-MoE) and the ensemble baselines: deep ensembles, MC dropout. */
export {
  repeatMembers,
  membersFirst,
  concatMembers,
  toRoutingOrder,
  fromRoutingOrder,
  type MemberLayout,
} from '../vmoe/members.js';
export { meanMemberLoss } from './combine.js';
export { ensembleLogits } from '../vmoe/members.js';
export { checkPartition, partitionMask, memberBlock } from '../vmoe/partition.js';
export { e3ValuesFromVmoe, isReshapedRouterKernel, type ParamValues } from './from-vmoe.js';
export { stackOutputs, ensembleOutputs, ensembleFlops, type EnsembleRunOptions } from './baselines.js';
