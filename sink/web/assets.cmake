# The dashboard's files, compiled into the sink: target topicflow_web_assets (alias
# topicflow::web_assets) with <topicflow/web_assets.hpp> (topicflow::web::find_asset).
# Listed explicitly: a new file under sink/web/ is added here.
include(${CMAKE_CURRENT_LIST_DIR}/../../cmake/embed_assets.cmake)

set(TOPICFLOW_WEB_DIR ${CMAKE_CURRENT_LIST_DIR})
set(TOPICFLOW_WEB_FILES index.html style.css app.js api.js dom.js live.js)
if(NOT TARGET topicflow_web_assets)
  topicflow_embed_assets(TARGET topicflow_web_assets DIR ${TOPICFLOW_WEB_DIR}
                         FILES ${TOPICFLOW_WEB_FILES})
endif()
