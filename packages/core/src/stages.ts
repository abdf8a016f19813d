/**
 * The one vocabulary of "where are we". `Stage`: what the trainer runs (`trainer.fit`, `validate`,
 * `test` or `predict`). `Phase`: the loop running inside a stage (`fit` runs `sanity_check`, `train`
 * and `validate`). Every other union of the packages is a subset of these two.
 */
export type Stage = 'fit' | 'validate' | 'test' | 'predict';
/** The loop running inside a stage. */
export type Phase = 'train' | 'sanity_check' | 'validate' | 'test' | 'predict';
/** The loop running inside a stage: the name `TrainerContext.runningStage` and `InterruptPosition` use for `Phase`. */
export type RunningStage = Phase;
/** The phases that evaluate (validation and test steps): the sanity check, validation and test. */
export type EvaluationPhase = Extract<Phase, 'sanity_check' | 'validate' | 'test'>;
