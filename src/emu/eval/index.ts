// eval: Emu's evaluation on held-out data: captioning CIDEr-D, VQA and video QA accuracy with the
// standard answer normalisation, FID with a real matrix square root, the digit classifier that
// judges generated digits (and gives FID its features), text-to-image attribute accuracy on the
// shapes world, and the paper-shaped result tables.
export * from './cider.ts';
export * from './vqa.ts';
export * from './spectral.ts';
export * from './fid.ts';
export * from './digits.ts';
export * from './attributes.ts';
export * from './tables.ts';
export * from './suite.ts';
export * from './report.ts';
