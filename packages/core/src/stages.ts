/** What the trainer runs: `trainer.fit`, `validate`, `test` or `predict`. */
export type Stage = 'fit' | 'validate' | 'test' | 'predict';
/** The loop running inside a stage. */
export type RunningStage = 'train' | 'sanity_check' | 'validate' | 'test' | 'predict';
