// emu/io: files and pictures around training: the PNG codec, image files in the model's pixel
// layout and grids of them, loss-curve plots, the progress bar, and the JSONL metrics log.
export { decodePNG, encodePNG, ImageError, MAX_PIXELS, type RawImage } from './png.ts';
export { imageGrid, readImage, resize, toBytes, toRGB, writeImage, type GridOptions, type RGBImage } from './image.ts';
export { formatTick, niceTicks, plotCurves, seriesFromRecords, SERIES_COLORS, type PlotOptions, type Series } from './plot.ts';
export { formatCount, formatDuration, formatMetric, Progress, type ProgressOptions, type ProgressStream } from './progress.ts';
export { MetricsLog, readJsonl, type JsonlContents, type MetricsLogOptions, type MetricsRecord } from './jsonl.ts';
