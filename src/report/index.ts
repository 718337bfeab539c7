/** The verification report's HTML rendering (the report itself: migration/report.ts). */
export { renderReportHtml, timelineSvg } from './html.js';
