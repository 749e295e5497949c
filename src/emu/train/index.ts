// emu-engine/emu training: the recipes and their six stages, the shared loop (checkpoints,
// resume, metrics) and the run folder a trained model is loaded back from.
export { train, toPair, toPairs, type TrainRunOptions } from './train.ts';
export { RECIPES, recipe, applyOverrides, type Recipe, type RecipeOverrides } from './recipe.ts';
export { runStage, type BatchSource, type StageSpec, type StepRecord, type RunOptions } from './loop.ts';
export { RunDir, STAGES, loadTrained, makeInstruct, type StageName, type RunMeta, type Trained, type LoraSpec } from './run_dir.ts';
export type { StageOptions, StageContext } from './stage.ts';
